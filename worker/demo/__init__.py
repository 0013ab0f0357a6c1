"""`roi-worker demo`: the worker against the local services, fed a realistic sample stream."""
