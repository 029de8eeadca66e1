"""Cost estimates from genai-prices: known prices, unknown models have no price (None, never 0)."""

import pytest

from lectr.pricing import cost_usd, has_price
from lectr.usage import Usage


def test_gpt_4o_price():
    # $2.50 per million input tokens, $10 per million output tokens
    assert cost_usd("openai", "gpt-4o", Usage(1000, 500)) == pytest.approx(1000 * 2.5 / 1e6 + 500 * 10 / 1e6)
    assert cost_usd("openai", "gpt-4o", Usage(1000, 500)) == pytest.approx(0.0075)


def test_claude_sonnet_price():
    # $3 per million input tokens, $15 per million output tokens
    assert cost_usd("anthropic", "claude-sonnet-4-5", Usage(1000, 500)) == pytest.approx(
        1000 * 3 / 1e6 + 500 * 15 / 1e6
    )
    assert cost_usd("anthropic", "claude-sonnet-4-5", Usage(1000, 500)) == pytest.approx(0.0105)


def test_gemini_is_priced_as_google():
    # gemini-2.5-flash: $0.30 per million input tokens, $2.50 per million output tokens
    assert has_price("gemini", "gemini-2.5-flash")
    assert cost_usd("gemini", "gemini-2.5-flash", Usage(1000, 500)) == pytest.approx(
        1000 * 0.30 / 1e6 + 500 * 2.5 / 1e6
    )
    assert cost_usd("gemini", "gemini-2.5-flash", Usage(1000, 500)) == cost_usd(
        "google", "gemini-2.5-flash", Usage(1000, 500)
    )


@pytest.mark.parametrize("provider, model", [("openai", "no-such-model-xyz"), (None, "gpt-4o"), ("openai", None)])
def test_unknown_model_has_no_price(provider, model):
    assert cost_usd(provider, model, Usage(1000, 500)) is None


def test_has_price():
    assert has_price("openai", "gpt-4o")
    assert has_price("anthropic", "claude-sonnet-4-5")
    assert not has_price("openai", "no-such-model-xyz")


def test_cached_tokens_make_it_cheaper():
    full = cost_usd("openai", "gpt-4o", Usage(1000, 500))
    cached = cost_usd("openai", "gpt-4o", Usage(1000, 500, cached=800))
    assert cached < full
    # 200 uncached at $2.50/M, 800 cached at $1.25/M, 500 output at $10/M
    assert cached == pytest.approx(200 * 2.5 / 1e6 + 800 * 1.25 / 1e6 + 500 * 10 / 1e6)


def test_zero_tokens_cost_zero_for_a_known_model():
    assert cost_usd("openai", "gpt-4o", Usage(0, 0)) == 0
