"""Annotations: the model every part of vtrack speaks, the Video Intelligence JSON edge, and
which objects a job keeps."""
