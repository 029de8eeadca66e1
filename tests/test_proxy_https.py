"""HTTPS_PROXY mode: clients keep their real provider URLs; Lectr intercepts provider hosts only."""

from __future__ import annotations

import datetime
import http.server
import json
import ssl
import subprocess
import sys
import textwrap
import threading

import anthropic
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from helpers import set_rules

MESSAGES = [{"role": "user", "content": "hello"}]


def test_openai_sdk_with_only_https_proxy_set(lectr, sim):
    """The application's code is untouched: OpenAI() with environment variables alone."""
    set_rules(lectr, "rules:\n  - {name: mini, priority: 1, match: {feature: bot}, target: {model: gpt-4o-mini}}\n")
    program = textwrap.dedent(
        f"""
        import json, openai
        # The default base URL, https://api.openai.com/v1; the key from OPENAI_API_KEY.
        headers = {{"X-Lectr-Key": {lectr.key!r}, "X-Lectr-Feature": "bot"}}
        client = openai.OpenAI(max_retries=0, default_headers=headers)
        reply = client.chat.completions.create(model="gpt-4o", messages=[{{"role": "user", "content": "hi"}}])
        stream = client.chat.completions.create(
            model="gpt-4o", messages=[{{"role": "user", "content": "hi"}}], stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        print(json.dumps({{"model": reply.model, "text": reply.choices[0].message.content, "streamed": text}}))
        """
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "HTTPS_PROXY": lectr.url,
        "SSL_CERT_FILE": str(lectr.ca_path),  # trust mitmproxy's CA
        "OPENAI_API_KEY": "sk-app-own-key",
    }
    done = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["model"] == "gpt-4o-mini" and result["text"] == result["streamed"] != ""
    received = sim.received()
    assert [r["path"] for r in received] == ["/v1/chat/completions"] * 2
    for r in received:
        assert r["body"]["model"] == "gpt-4o-mini"
        assert r["headers"]["authorization"] == "Bearer sk-app-own-key"
        assert not [h for h in r["headers"] if h.startswith("x-lectr")]


def test_anthropic_sdk_through_the_proxy_streaming_and_not(lectr, sim):
    client = anthropic.Anthropic(
        api_key="sk-ant-app",
        default_headers={"X-Lectr-Key": lectr.key},
        # The SDK's own HTTP client class (anthropic 2 is built on httpx2 and refuses an httpx.Client).
        http_client=anthropic.DefaultHttpxClient(
            proxy=lectr.url, verify=ssl.create_default_context(cafile=lectr.ca_path)
        ),
        max_retries=0,
    )
    message = client.messages.create(model="claude-sonnet-4-5", max_tokens=32, messages=MESSAGES)
    with client.messages.stream(model="claude-sonnet-4-5", max_tokens=32, messages=MESSAGES) as stream:
        assert "".join(stream.text_stream) == message.content[0].text
    received = sim.received()
    assert [r["path"] for r in received] == ["/v1/messages"] * 2
    assert all(r["headers"]["x-api-key"] == "sk-ant-app" for r in received)
    assert not [h for r in received for h in r["headers"] if h.startswith("x-lectr")]


def test_intercepted_provider_traffic_needs_a_lectr_key(lectr, sim):
    with httpx.Client(proxy=lectr.url, verify=ssl.create_default_context(cafile=lectr.ca_path)) as client:
        response = client.post(
            "https://api.groq.com/openai/v1/chat/completions", json={"model": "llama-3.1-8b-instant"}
        )
    assert response.status_code == 401 and "X-Lectr-Key" in response.json()["error"]["message"]
    assert sim.received() == []


@pytest.fixture
def tls_server(tmp_path):
    """An HTTPS server for 'localhost' with its own self-signed certificate: not a provider."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"saw_headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://localhost:{server.server_address[1]}", cert_path
    server.shutdown()
    server.server_close()


def test_other_hosts_are_tunnelled_untouched(lectr, sim, tls_server):
    url, own_cert = tls_server
    # The client trusts only the server's own certificate: the request succeeds only if
    # Lectr did not intercept (it would present a mitmproxy certificate instead).
    with httpx.Client(proxy=lectr.url, verify=ssl.create_default_context(cafile=own_cert)) as client:
        response = client.get(f"{url}/anything", headers={"X-Lectr-Feature": "kept"})
    assert response.status_code == 200
    assert response.json()["saw_headers"]["x-lectr-feature"] == "kept"  # untouched, no key asked
    assert sim.received() == []
