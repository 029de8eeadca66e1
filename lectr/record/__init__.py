"""The writer process: finished requests in, stored rows out.

The proxy's `lectr.proxy.writerprocess.WriterProcess` hands `Event`s over a pipe to this
process (`writer.child_main`), which counts tokens (`usage` reported, else `estimate`/`tokens`),
prices them (`lectr.prices`) and writes batches through `lectr.store`. Nothing here runs while
a request is in flight, and the proxy process never imports it.
"""
