"""The proxy process: what runs while a request is in flight.

`addons/` holds the mitmproxy addon classes, one concern each, composed in `addons/lectr.py` at
the project's root. The modules here are the pure logic they call (no mitmproxy import):
routing, headers, paths, credentials, fallback decisions, rule health; and the proxy's ends of
its two child processes (writerprocess.py, jobcalls.py).

Nothing here imports `lectr.record`, `lectr.jobs` or `lectr.admin` at load time
(tests/test_layout.py): the proxy starts the writer and the jobs as child processes, whose
entries (`writerprocess._child`, the calls in `jobcalls`) import them there, in the child.
"""
