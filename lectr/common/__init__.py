"""What more than one of Lectr's processes speaks: providers, rules, keys, the event, usage.

Pure: no mitmproxy import, no database. The proxy builds an `events.Event`; the writer meters it.
"""
