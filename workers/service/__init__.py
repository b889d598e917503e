"""Service plumbing: claims on videos in flight, the shared API quota, backoff, and scans."""
