"""``vtrack vi-server``: the Video Intelligence API (OBJECT_TRACKING) served by vtrack.

Code written against Google's client (``annotate_video(...)`` then ``operation.result()``)
keeps working with one changed line, the endpoint: each request starts a vtrack job on the
local tracker and its workers, and the job is reported as the API's long-running operation.

* :mod:`.protocol` learns the RPCs' paths and message types from the client library itself;
* :mod:`.operations` keeps what each operation was asked, and turns a job into an operation;
* :mod:`.server` is the gRPC server: the servicers, the API-key check, TLS, the sweeper that
  writes ``output_uri`` files.
"""
