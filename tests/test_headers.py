from lectr.headers import client_credential, pop_lectr_headers, set_provider_auth


def test_pop_lectr_headers_reads_and_removes_every_x_lectr_header():
    headers = {
        "X-Lectr-Key": "lk_abc_def",
        "x-lectr-feature": "support-bot",
        "X-LECTR-TASK": "Classification",
        "X-Lectr-Provider": "Groq",
        "X-Lectr-Something-New": "x",
        "content-type": "application/json",
    }
    meta = pop_lectr_headers(headers)
    assert (meta.key, meta.feature, meta.task, meta.provider) == ("lk_abc_def", "support-bot", "Classification", "groq")
    assert headers == {"content-type": "application/json"}


def test_empty_lectr_headers_count_as_absent():
    meta = pop_lectr_headers({"X-Lectr-Feature": "  "})
    assert meta.feature is None and meta.key is None


def test_client_credential_from_any_provider_header():
    assert client_credential({"Authorization": "Bearer sk-1"}) == "sk-1"
    assert client_credential({"x-api-key": "sk-ant-1"}) == "sk-ant-1"
    assert client_credential({"api-key": "az-1"}) == "az-1"
    assert client_credential({"Authorization": "Basic abc"}) is None
    assert client_credential({}) is None


def test_set_provider_auth_uses_each_providers_header():
    h = {"x-api-key": "old", "content-type": "application/json"}
    set_provider_auth(h, "openai", "sk-new")
    assert h == {"content-type": "application/json", "authorization": "Bearer sk-new"}

    h = {"Authorization": "Bearer sk-old"}
    set_provider_auth(h, "anthropic", "sk-ant")
    assert h == {"x-api-key": "sk-ant", "anthropic-version": "2023-06-01"}

    h = {"Authorization": "Bearer x", "anthropic-version": "2024-01-01"}
    set_provider_auth(h, "anthropic", "sk-ant")
    assert h["anthropic-version"] == "2024-01-01"

    h = {"Authorization": "Bearer x"}
    set_provider_auth(h, "azure", "az-key")
    assert h == {"api-key": "az-key"}

    h = {"authorization": "Bearer x"}
    set_provider_auth(h, "gemini", "g-key")
    assert h == {"authorization": "Bearer g-key"}
