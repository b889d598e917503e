"""Media: probing and decoding videos, drawing on frames, animations and the summary grid."""
