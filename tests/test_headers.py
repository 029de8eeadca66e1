from lectr.proxy.headers import LectrHeaders, client_credential, split_lectr_headers, with_provider_auth


def fields(**headers: str) -> tuple[tuple[bytes, bytes], ...]:
    """Header fields as mitmproxy holds them; `x_api_key=` stands for `x-api-key`."""
    return tuple((name.replace("_", "-").encode(), value.encode()) for name, value in headers.items())


def as_dict(f) -> dict[str, str]:
    return {name.decode(): value.decode() for name, value in f}


def test_split_lectr_headers_reads_and_removes_every_x_lectr_header():
    meta, kept = split_lectr_headers(
        (
            (b"X-Lectr-Key", b"lk_abc_def"),
            (b"x-lectr-feature", b"support-bot"),
            (b"content-type", b"application/json"),
            (b"X-LECTR-TASK", b"Classification"),
            (b"X-Lectr-Provider", b"Groq"),
            (b"X-Lectr-Something-New", b"x"),
            (b"Accept", b"*/*"),
        )
    )
    assert (meta.key, meta.feature, meta.task, meta.provider) == ("lk_abc_def", "support-bot", "Classification", "groq")
    assert kept == ((b"content-type", b"application/json"), (b"Accept", b"*/*"))  # order kept


def test_empty_lectr_headers_count_as_absent():
    meta, kept = split_lectr_headers(fields(x_lectr_feature="  "))
    assert meta == LectrHeaders() and kept == ()
    untouched = fields(accept="*/*")
    assert split_lectr_headers(untouched) == (LectrHeaders(), untouched)


def test_client_credential_from_any_provider_header():
    assert client_credential(fields(Authorization="Bearer sk-1")) == "sk-1"
    assert client_credential(fields(x_api_key="sk-ant-1")) == "sk-ant-1"
    assert client_credential(fields(api_key="az-1")) == "az-1"
    assert client_credential(fields(Authorization="Basic abc")) is None
    assert client_credential(()) is None


def test_with_provider_auth_uses_each_providers_header():
    f = with_provider_auth(fields(x_api_key="old", content_type="application/json"), "openai", "sk-new")
    assert as_dict(f) == {"content-type": "application/json", "authorization": "Bearer sk-new"}

    f = with_provider_auth(fields(Authorization="Bearer sk-old"), "anthropic", "sk-ant")
    assert as_dict(f) == {"x-api-key": "sk-ant", "anthropic-version": "2023-06-01"}

    f = with_provider_auth(fields(Authorization="Bearer x", anthropic_version="2024-01-01"), "anthropic", "sk-ant")
    assert as_dict(f)["anthropic-version"] == "2024-01-01"

    assert as_dict(with_provider_auth(fields(Authorization="Bearer x"), "azure", "az-key")) == {"api-key": "az-key"}
    f = with_provider_auth(fields(authorization="Bearer x"), "gemini", "g-key")
    assert as_dict(f) == {"authorization": "Bearer g-key"}
    assert with_provider_auth(fields(Authorization="Bearer x"), "openai", None) == ()
