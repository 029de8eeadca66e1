"""The writer process: finished requests in, stored rows out.

The proxy hands `Event`s over a pipe to `writer.WriterProcess`'s child, which counts tokens
(`usage` reported, else `estimate`/`tokens`), prices them (`lectr.prices`) and writes batches
through `lectr.store`. Nothing here runs while a request is in flight.
"""
