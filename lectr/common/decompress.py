"""Undoing a body's Content-Encoding, within a limit on what it decompresses to.

Pure. Used by the router (the request's `model` is read from the decoded body), by the
fallback (the original request, sent again) and by the writer (the bodies it meters).
gzip, deflate, br and zstd, as mitmproxy itself decodes.
"""

from __future__ import annotations

import zlib

# A compressed body is read up to this size decompressed. Brotli turns 256 MB of zeros
# into 421 bytes: without a limit, a request of a few kilobytes takes gigabytes to read.
DECODED_LIMIT = 64 * 1024 * 1024


def decoded(data: bytes | None, encoding: str | None) -> bytes | None:
    """The body with its Content-Encoding undone; None when the encoding is unknown or
    broken, or the body decompresses to more than DECODED_LIMIT (nothing to read)."""
    encoding = (encoding or "").strip().lower()
    if not data or encoding in ("", "identity", "none"):
        return data
    try:
        if encoding in ("gzip", "x-gzip"):
            return _inflate(data, 16 + zlib.MAX_WBITS)
        if encoding == "deflate":  # zlib-wrapped as the RFC says, or raw as some servers send it
            try:
                return _inflate(data, zlib.MAX_WBITS)
            except zlib.error:
                return _inflate(data, -zlib.MAX_WBITS)
        if encoding == "br":
            import brotli  # installed with mitmproxy

            return _unbrotli(brotli.Decompressor(), data)
        if encoding == "zstd":
            return _unzstd(data)
    except Exception:  # broken data: each library has its own error
        return None
    return None


def _inflate(data: bytes, wbits: int) -> bytes | None:
    out = bytearray()
    while data:  # gzip allows several members one after another
        inflater = zlib.decompressobj(wbits)
        out += inflater.decompress(data, DECODED_LIMIT + 1 - len(out))  # max_length 0 would mean no limit
        if len(out) > DECODED_LIMIT or not inflater.eof:
            return None  # too large, or cut short
        data = inflater.unused_data
    return bytes(out)


def _unbrotli(decompressor, data: bytes) -> bytes | None:
    # This brotli has no output limit: fed 16 bytes at a time, one call yields ~16 MB at most.
    out = bytearray()
    for i in range(0, len(data), 16):
        out += decompressor.process(data[i : i + 16])
        if len(out) > DECODED_LIMIT:
            return None
    return bytes(out) if decompressor.is_finished() else None


def _unzstd(data: bytes) -> bytes | None:
    zstd = zstd_module()
    out = bytearray()
    while data:  # like gzip, several frames may follow one another
        decompressor = zstd.ZstdDecompressor()
        out += decompressor.decompress(data, DECODED_LIMIT + 1 - len(out))
        if len(out) > DECODED_LIMIT or not decompressor.eof:
            return None  # too large, or cut short
        data = decompressor.unused_data
    return bytes(out)


def zstd_module():
    """The standard library's zstd (Python 3.14), or its backport, as mitmproxy itself uses it."""
    try:
        from compression import zstd
    except ImportError:
        from backports import zstd
    return zstd
