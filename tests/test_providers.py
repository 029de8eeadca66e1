import pytest

from lectr.common.providers import base_urls, detect_provider, provider_for_host


@pytest.mark.parametrize(
    "model, provider",
    [
        ("gpt-4o", "openai"),
        ("gpt-4o-mini", "openai"),
        ("o1-mini", "openai"),
        ("o3", "openai"),
        ("o4-mini", "openai"),
        ("chatgpt-4o-latest", "openai"),
        ("claude-sonnet-4-5", "anthropic"),
        ("Claude-3-Haiku", "anthropic"),
        ("llama-3.1-8b-instant", "groq"),
        ("mixtral-8x7b-32768", "groq"),
        ("gemma2-9b-it", "groq"),
        ("gemini-2.0-flash", "gemini"),
        ("mistral-large-latest", "mistral"),
        ("codestral-latest", "mistral"),
        ("deepseek-chat", "deepseek"),
        ("grok-3", "xai"),
    ],
)
def test_detect_provider_from_model(model, provider):
    assert detect_provider(model) == provider


@pytest.mark.parametrize("model", ["", "my-finetune", "text-davinci-unknown", "ollama/phi"])
def test_unknown_models_are_not_guessed(model):
    assert detect_provider(model) is None


@pytest.mark.parametrize(
    "host, provider",
    [
        ("api.openai.com", "openai"),
        ("API.Anthropic.com", "anthropic"),
        ("api.groq.com", "groq"),
        ("generativelanguage.googleapis.com", "gemini"),
        ("acme.openai.azure.com", "azure"),
        ("acme.cognitiveservices.azure.com", "azure"),
        ("example.com", None),
        ("openai.com.evil.example", None),
        ("127.0.0.1", None),
    ],
)
def test_provider_for_host(host, provider):
    assert provider_for_host(host) == provider


def test_base_urls_are_overridable_by_environment():
    urls = base_urls(
        {"LECTR_OPENAI_BASE_URL": "http://127.0.0.1:9000/v1/", "LECTR_GROQ_BASE_URL": "http://x/openai/v1"}
    )
    assert urls["openai"] == "http://127.0.0.1:9000/v1"
    assert urls["groq"] == "http://x/openai/v1"
    assert urls["anthropic"] == "https://api.anthropic.com"
    assert urls["gemini"] == "https://generativelanguage.googleapis.com/v1beta/openai"
