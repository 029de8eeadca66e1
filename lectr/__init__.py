"""Lectr: a zero-code-change proxy for LLM API traffic.

The modules directly in this package are pure (no mitmproxy import) and tested as plain
functions; `lectr.addons` holds the mitmproxy addon classes that apply them.
"""

__version__ = "0.1.0"
