import pytest

from lectr.proxy.credentials import CredentialsError, parse_credentials

FILE = """
providers:
  groq: {api_key: gsk-global}
  azure: {api_key: az-global, endpoint: "https://global.openai.azure.com/", deployments: {gpt-4o: prod-4o}}
orgs:
  acme:
    providers:
      groq: {api_key: gsk-acme}
      azure: {deployments: {gpt-4o-mini: acme-mini}}
"""


def test_org_settings_override_global_ones_which_override_environment():
    creds = parse_credentials(FILE, env={"LECTR_GROQ_API_KEY": "gsk-env", "LECTR_GEMINI_API_KEY": "g-env"})
    assert creds.api_key("acme", "groq") == "gsk-acme"
    assert creds.api_key("other", "groq") == "gsk-global"
    assert creds.api_key("acme", "gemini") == "g-env"
    assert creds.api_key("acme", "openai") is None
    azure = creds.settings("acme", "azure")
    assert azure.endpoint == "https://global.openai.azure.com"
    assert dict(azure.deployments) == {"gpt-4o": "prod-4o", "gpt-4o-mini": "acme-mini"}


def test_can_serve_needs_a_key_and_for_azure_an_endpoint():
    creds = parse_credentials(None, env={"LECTR_OPENAI_API_KEY": "sk", "LECTR_AZURE_API_KEY": "az"})
    assert creds.can_serve("x", "openai")
    assert not creds.can_serve("x", "groq")
    assert not creds.can_serve("x", "azure")  # a key alone: no endpoint to send to
    creds = parse_credentials(None, env={"LECTR_AZURE_API_KEY": "az", "LECTR_AZURE_BASE_URL": "http://sim/"})
    assert creds.can_serve("x", "azure")
    assert creds.settings("x", "azure").endpoint == "http://sim"


@pytest.mark.parametrize(
    "text, message",
    [
        ("keys: {}", "top-level keys"),
        ("providers: {openrouter: {api_key: x}}", "unknown provider 'openrouter'"),
        ("providers: {openai: {token: x}}", "providers.openai: allowed fields"),
        ("orgs: {acme: {groq: {}}}", "orgs.acme must be a mapping with one key"),
    ],
)
def test_invalid_secrets_file_says_where(text, message):
    with pytest.raises(CredentialsError, match=message):
        parse_credentials(text, env={})
