"""A node type that streams its output (``ctx.stream``), for the browser tests of
the execution page's output panels (tests/browser/test_stream_panels.py)."""
