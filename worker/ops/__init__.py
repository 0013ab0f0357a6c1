"""Operator tools, each a request -> run -> result: replay, dead letters, offsets, retention."""
