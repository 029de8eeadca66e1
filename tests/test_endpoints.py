import pytest

from lectr.proxy.endpoints import Endpoint, parse_path, split_url, upstream_url


@pytest.mark.parametrize(
    "path, expected",
    [
        ("/v1/chat/completions", Endpoint("/chat/completions")),
        ("/openai/v1/chat/completions", Endpoint("/chat/completions", provider="groq")),
        ("/v1beta/openai/chat/completions", Endpoint("/chat/completions", provider="gemini")),
        ("/v1/responses", Endpoint("/responses")),
        ("/v1/embeddings", Endpoint("/embeddings")),
        ("/v1/models?limit=2", Endpoint("/models", "limit=2")),
        ("/v1/messages", Endpoint("/messages", native="anthropic", provider="anthropic")),
        ("/v1/messages/count_tokens", Endpoint("/messages/count_tokens", native="anthropic", provider="anthropic")),
        (
            "/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21",
            Endpoint(
                "/chat/completions", "api-version=2024-10-21", native="azure", deployment="gpt4o-prod", provider="azure"
            ),
        ),
        # As AzureOpenAI clients send the Responses API: no deployment, the model is in the body.
        (
            "/openai/responses?api-version=2025-04-01-preview",
            Endpoint("/responses", "api-version=2025-04-01-preview", native="azure", provider="azure"),
        ),
        ("/openai/deployments/", None),
        ("/", None),
        ("/healthz", None),
        ("/v2/chat/completions", None),
    ],
)
def test_parse_path(path, expected):
    assert parse_path(path) == expected


def test_chat_responses_and_native_messages_are_routable():
    assert parse_path("/v1/chat/completions").routable
    assert parse_path("/v1/responses").routable
    assert parse_path("/v1/messages").routable
    assert not parse_path("/v1/embeddings").routable
    assert not parse_path("/v1/messages/count_tokens").routable


def test_upstream_url_per_provider():
    chat = parse_path("/v1/chat/completions")
    assert upstream_url("https://api.openai.com/v1", "openai", chat) == "https://api.openai.com/v1/chat/completions"
    assert (
        upstream_url("https://api.groq.com/openai/v1", "groq", chat)
        == "https://api.groq.com/openai/v1/chat/completions"
    )
    # Anthropic's OpenAI-compatible endpoint, and its native one, both under /v1.
    assert (
        upstream_url("https://api.anthropic.com", "anthropic", chat) == "https://api.anthropic.com/v1/chat/completions"
    )
    messages = parse_path("/v1/messages?beta=true")
    assert upstream_url("http://127.0.0.1:9000", "anthropic", messages) == "http://127.0.0.1:9000/v1/messages?beta=true"


def test_upstream_url_for_azure_uses_deployment_and_api_version():
    chat = parse_path("/v1/chat/completions")
    url = upstream_url("https://acme.openai.azure.com", "azure", chat, "2024-10-21", "gpt4o-prod")
    assert url == "https://acme.openai.azure.com/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21"
    native = parse_path("/openai/deployments/d1/chat/completions?api-version=2024-06-01")
    assert upstream_url("http://sim", "azure", native, "2024-10-21") == (
        "http://sim/openai/deployments/d1/chat/completions?api-version=2024-06-01"
    )
    # Leaving Azure drops its api-version query.
    assert upstream_url("https://api.openai.com/v1", "openai", native) == "https://api.openai.com/v1/chat/completions"
    with pytest.raises(ValueError, match="deployment"):
        upstream_url("http://sim", "azure", chat, "2024-10-21")


def test_split_url():
    u = split_url("http://127.0.0.1:9000/v1/chat/completions?x=1")
    assert (u.scheme, u.host, u.port, u.path) == ("http", "127.0.0.1", 9000, "/v1/chat/completions?x=1")
    u = split_url("https://api.openai.com/v1/models")
    assert (u.scheme, u.host, u.port, u.path) == ("https", "api.openai.com", 443, "/v1/models")
    assert split_url("http://[::1]:81").host == "::1"
    with pytest.raises(ValueError):
        split_url("ftp://x/y")


def test_upstream_url_for_the_responses_api_at_azure_has_no_deployment():
    responses = parse_path("/v1/responses")
    # Switched to Azure: its v1 path, with the deployment as the body's model (the router's job).
    assert upstream_url("https://acme.openai.azure.com", "azure", responses, "2024-10-21", "prod") == (
        "https://acme.openai.azure.com/openai/v1/responses"
    )
    native = parse_path("/openai/responses?api-version=2025-04-01-preview")
    assert upstream_url("http://sim", "azure", native, "2024-10-21", "prod") == (
        "http://sim/openai/responses?api-version=2025-04-01-preview"
    )
    assert upstream_url("https://api.openai.com/v1", "openai", native) == "https://api.openai.com/v1/responses"
