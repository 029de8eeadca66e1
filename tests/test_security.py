"""Security: no secret at rest, loopback by default, owner-only files, nothing of Lectr's reaches a provider.

Real processes throughout: `mitmdump -s addons/lectr.py` (tests/helpers.py), the official
openai and anthropic SDKs in base_url and HTTPS_PROXY mode, the provider simulator (which
records every request it receives), the `lectr` command line and the Streamlit dashboard.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import secrets
import ssl
import subprocess
import sys
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
import yaml
from harness import LECTR_CLI
from harness import start_lectr as start_lectr_process
from test_proxy_base_url import SWITCH_RULES

from lectr.admin import haproxy
from lectr.common import keys
from lectr.proxy.credentials import parse_credentials
from lectr.store import open_store
from lectr.store.duckdb_connection import connect
from lectr.store.duckdb_store import keys_stamp

from helpers import ROOT, free_port, simulator_env, start_lectr, stop, wait_until

pytestmark = pytest.mark.slow  # starts mitmdump, Streamlit and servers in network namespaces

STREAMLIT = str(Path(sys.executable).with_name("streamlit"))
MESSAGES = [{"role": "user", "content": "Is this message about billing or shipping?"}]
MODES = ("base_url", "https_proxy")
SDKS = ("openai", "anthropic")
CASES = [(mode, sdk, stream) for mode in MODES for sdk in SDKS for stream in (False, True)]
LOOPBACK = {"127.0.0.1", "::1"}

# Provider keys: the prefix a provider uses, then a random part that can only come from here.
CLIENT_OPENAI_KEY = f"sk-client-{secrets.token_hex(16)}"
CLIENT_ANTHROPIC_KEY = f"sk-ant-client-{secrets.token_hex(16)}"
LECTR_GROQ_KEY = f"gsk-lectr-{secrets.token_hex(16)}"  # Lectr's own: secrets file or environment
LECTR_GEMINI_KEY = f"gemini-lectr-{secrets.token_hex(16)}"  # Lectr's own: environment


@pytest.fixture(scope="module")
def guarded(simulator_process, tmp_path_factory):
    """A proxy with provider-switching rules, Lectr's own Groq key, and a job every second.

    Started under a usual umask (022): what comes out owner-only is Lectr's or mitmproxy's doing.
    """
    umask = os.umask(0o022)
    try:
        proxy = start_lectr(
            tmp_path_factory.mktemp("guarded"),
            simulator_process.url,
            rules=SWITCH_RULES,
            env={"LECTR_GROQ_API_KEY": LECTR_GROQ_KEY},
            options={"lectr_flush_ms": 100, "lectr_aggregate_every": 1},
        )
    finally:
        os.umask(umask)
    yield proxy
    stop(proxy.proc)


# --- driving the SDKs -----------------------------------------------------------------


def http_client(lectr, mode: str, client_class=httpx.Client):
    """HTTPS_PROXY mode: the client keeps the provider's real URL and trusts mitmproxy's CA.

    client_class: anthropic 2 takes only its own (httpx2-based) anthropic.DefaultHttpxClient.
    """
    if mode == "base_url":
        return None
    return client_class(proxy=lectr.url, verify=ssl.create_default_context(cafile=lectr.ca_path))


def call(lectr, mode: str, sdk: str, stream: bool, **headers: str) -> str:
    """One chat request through Lectr with the official SDK; the answer's text."""
    headers = {"X-Lectr-Key": lectr.key, "X-Lectr-Feature": "support-bot", "X-Lectr-Unknown": "x", **headers}
    if sdk == "openai":
        base_url = f"{lectr.url}/v1" if mode == "base_url" else "https://api.openai.com/v1"
        with openai.OpenAI(
            base_url=base_url,
            api_key=CLIENT_OPENAI_KEY,
            default_headers=headers,
            http_client=http_client(lectr, mode),
            max_retries=0,
        ) as client:
            if not stream:
                return client.chat.completions.create(model="gpt-4o", messages=MESSAGES).choices[0].message.content
            chunks = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
            return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    base_url = lectr.url if mode == "base_url" else "https://api.anthropic.com"
    with anthropic.Anthropic(
        base_url=base_url,
        api_key=CLIENT_ANTHROPIC_KEY,
        default_headers=headers,
        http_client=http_client(lectr, mode, anthropic.DefaultHttpxClient),
        max_retries=0,
    ) as client:
        if not stream:
            return client.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=MESSAGES).content[0].text
        with client.messages.stream(model="claude-sonnet-4-5", max_tokens=64, messages=MESSAGES) as answer:
            return "".join(answer.text_stream)


def call_raw(lectr, mode: str, key: str, extra: list[tuple[str, str]] = ()) -> httpx.Response:
    """A request with headers exactly as listed: X-Lectr-Key twice, in odd case."""
    url = f"{lectr.url}/v1/chat/completions" if mode == "base_url" else "https://api.openai.com/v1/chat/completions"
    headers = [
        ("X-Lectr-Key", key),
        ("X-LECTR-KEY", key),
        ("x-LeCtR-fEaTuRe", "bot"),
        ("X-LECTR-TASK", "classification"),
        ("Authorization", f"Bearer {CLIENT_OPENAI_KEY}"),
        *extra,
    ]
    body = {"model": "gpt-4o", "messages": MESSAGES}
    client = http_client(lectr, mode) or httpx.Client()
    with client:
        return client.post(url, headers=headers, json=body, timeout=10)


# --- what to look for ------------------------------------------------------------------


def secret_part(key: str) -> str:
    """The random part: a Lectr key's after `lk_<id>_` (the id is public), a provider key's after its prefix."""
    if key.startswith(keys.PREFIX):
        return key.split("_", 2)[2]
    return key.rsplit("-", 1)[1]


def forms(key: str) -> list[bytes]:
    """The key and its secret part, as text, base64 and hex; compared case-insensitively."""
    found = []
    for text in (key, secret_part(key)):
        raw = text.encode()
        found += [raw.lower(), base64.b64encode(raw).lower(), raw.hex().encode()]
    return found


def leaks(data: bytes, named_keys: dict[str, str]) -> list[str]:
    """Which of the keys (by name) appear in `data` in any of their forms."""
    lowered = data.lower()
    return [name for name, key in named_keys.items() if any(form in lowered for form in forms(key))]


def files_with_keys(work: Path, named_keys: dict[str, str]) -> dict[str, list[str]]:
    """Every file under `work` but the secrets file (where Lectr's own keys belong) that holds a key."""
    found = {}
    for path in sorted(work.rglob("*")):
        try:
            data = path.read_bytes() if path.is_file() and path.name != "secrets.yaml" else b""
        except FileNotFoundError:  # a .wal removed meanwhile
            continue
        if which := leaks(data, named_keys):
            found[str(path.relative_to(work))] = which
    return found


def assert_nothing_of_lectrs(received: dict, lectr_key: str) -> None:
    lectr_headers = [name for name in received["headers"] if name.lower().startswith("x-lectr-")]
    assert lectr_headers == [], received["headers"]
    assert leaks(json.dumps(received).encode(), {"lectr key": lectr_key}) == []


# --- X-Lectr-* headers and Lectr keys never reach a provider -------------------------


@pytest.mark.parametrize(
    ("mode", "sdk", "stream"), CASES, ids=[f"{m}-{s}-{'stream' if t else 'plain'}" for m, s, t in CASES]
)
def test_no_lectr_header_or_key_reaches_the_provider(guarded, sim, mode, sdk, stream):
    assert call(guarded, mode, sdk, stream, **{"X-Lectr-Task": "classification"}).startswith("Lectr routes")
    (received,) = sim.received()
    assert_nothing_of_lectrs(received, guarded.key)
    # The rest arrived: the client's own key, in its provider's header.
    if sdk == "openai":
        assert received["headers"]["authorization"] == f"Bearer {CLIENT_OPENAI_KEY}"
    else:
        assert received["headers"]["x-api-key"] == CLIENT_ANTHROPIC_KEY
    assert received["body"]["stream" if stream else "messages"] == (True if stream else MESSAGES)


@pytest.mark.parametrize("stream", (False, True), ids=("plain", "stream"))
@pytest.mark.parametrize("mode", MODES)
def test_a_provider_switch_sends_lectrs_own_key_and_nothing_of_the_clients(guarded, sim, mode, stream):
    assert call(guarded, mode, "openai", stream, **{"X-Lectr-Task": "summarisation"}).startswith("Lectr routes")
    (received,) = sim.received()
    assert received["path"] == "/openai/v1/chat/completions" and received["body"]["model"] == "llama-3.1-8b-instant"
    assert received["headers"]["authorization"] == f"Bearer {LECTR_GROQ_KEY}"
    assert_nothing_of_lectrs(received, guarded.key)
    assert leaks(json.dumps(received).encode(), {"client's OpenAI key": CLIENT_OPENAI_KEY}) == []


@pytest.mark.parametrize("mode", MODES)
def test_a_repeated_odd_case_lectr_key_header_never_reaches_the_provider(guarded, sim, mode):
    response = call_raw(guarded, mode, guarded.key, [("X-Lectr-Echo", guarded.key)])
    assert response.status_code == 200, response.text
    (received,) = sim.received()
    assert received["headers"]["authorization"] == f"Bearer {CLIENT_OPENAI_KEY}"
    assert_nothing_of_lectrs(received, guarded.key)


def test_the_leak_check_finds_a_lectr_header_or_key_in_any_case():
    """The check above is not vacuous: it sees the header name and the key's secret part in any case."""
    key = keys.generate_key().key
    with pytest.raises(AssertionError):
        assert_nothing_of_lectrs({"headers": {"X-LECTR-KEY": "x"}, "body": {}}, key)
    with pytest.raises(AssertionError):
        assert_nothing_of_lectrs({"headers": {}, "query": f"k={secret_part(key).upper()}", "body": {}}, key)


# --- no secret at rest -----------------------------------------------------------------


def test_no_secret_at_rest(simulator_process, tmp_path):
    """After real SDK traffic in every mode, no key used is in the database, its stamp, the logs or the rules."""
    sim = simulator_process
    sim.clear()
    work = tmp_path / "lectr"
    work.mkdir()
    # Lectr's own Groq key from the secrets file (written by `lectr secrets set`), Gemini's from the environment.
    subprocess.run(
        [LECTR_CLI, "secrets", "set", "groq", "--file", str(work / "secrets.yaml")],
        input=LECTR_GROQ_KEY,
        text=True,
        capture_output=True,
        check=True,
    )
    lectr = start_lectr(
        work,
        sim.url,
        rules=SWITCH_RULES,
        env={"LECTR_GEMINI_API_KEY": LECTR_GEMINI_KEY},
        options={"lectr_flush_ms": 100, "lectr_aggregate_every": 1},
    )
    wrong_key = f"{keys.PREFIX}{keys.key_id_of(lectr.key)}_{secrets.token_urlsafe(32)}"  # the right id
    named_keys = {
        "Lectr key": lectr.key,
        "wrong Lectr key": wrong_key,
        "client's OpenAI key": CLIENT_OPENAI_KEY,
        "client's Anthropic key": CLIENT_ANTHROPIC_KEY,
        "Lectr's Groq key (secrets file)": LECTR_GROQ_KEY,
        "Lectr's Gemini key (environment)": LECTR_GEMINI_KEY,
    }
    try:
        for mode, sdk, stream in CASES:
            assert call(lectr, mode, sdk, stream).startswith("Lectr routes")
        for mode in MODES:
            for stream, task in ((False, "summarisation"), (True, "extraction")):
                assert call(lectr, mode, "openai", stream, **{"X-Lectr-Task": task}).startswith("Lectr routes")
            assert call_raw(lectr, mode, lectr.key).status_code == 200
            assert call_raw(lectr, mode, wrong_key).status_code == 401
        answered = len(CASES) + 3 * len(MODES)
        auth = [r["headers"].get("authorization") for r in sim.received()]
        assert len(auth) == answered  # the refused requests never reached it
        assert auth.count(f"Bearer {LECTR_GROQ_KEY}") == 2 and auth.count(f"Bearer {LECTR_GEMINI_KEY}") == 2

        def logged() -> int:
            with connect(lectr.db_path, read_only=True) as con:
                return con.execute("SELECT count(*) FROM request_logs WHERE status_code = 200").fetchone()[0]

        wait_until(lambda: logged() == answered, timeout=10, what="every request to be logged")

        def summarised() -> bool:  # an aggregation that ran after the rows were in
            with connect(lectr.db_path, read_only=True) as con:
                return con.execute("SELECT count(*) FROM dashboard_summaries").fetchone()[0] > 0

        wait_until(summarised, timeout=15, what="an aggregation of the logged requests")
        while_running = files_with_keys(work, named_keys)  # a DuckDB .wal, if one is there right now
    finally:
        stop(lectr.proc)

    assert while_running == {}
    assert files_with_keys(work, named_keys) == {}
    names = {p.name for p in work.rglob("*")}
    assert {"lectr.duckdb", "lectr.duckdb.keys", "mitmdump.log", "rules.yaml"} <= names, names

    # DuckDB may compress strings on disk, so also every value of every table, as read back.
    with connect(lectr.db_path, read_only=True) as con:
        tables = [row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()]
        rows = {table: con.execute(f'SELECT * FROM "{table}"').fetchall() for table in tables}
        stored_hashes = [row[0] for row in con.execute("SELECT key_hash FROM org_keys").fetchall()]
    assert {"org_keys", "request_logs", "dashboard_summaries"} <= set(tables)
    assert len(rows["request_logs"]) >= answered and rows["dashboard_summaries"]
    found = {table: leaks(json.dumps(rows[table], default=str).encode(), named_keys) for table in tables}
    assert {table: which for table, which in found.items() if which} == {}
    # Only the key's SHA-256 is kept, and it is there as written.
    assert stored_hashes == [keys.hash_key(lectr.key)]
    assert keys.hash_key(lectr.key).encode() in lectr.db_path.read_bytes()


def test_keys_are_compared_by_hash_in_constant_time(monkeypatch):
    """KeyRing.org_for checks the SHA-256 of the presented key with hmac.compare_digest, never with ==."""
    new = keys.generate_key()
    ring = keys.KeyRing([keys.StoredKey(new.key_id, "acme", new.key_hash)])
    calls = []
    real = keys.hmac.compare_digest

    def recording(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(keys.hmac, "compare_digest", recording)
    wrong = f"{keys.PREFIX}{new.key_id}_{secrets.token_urlsafe(32)}"
    assert ring.org_for(new.key) == "acme" and ring.org_for(wrong) is None
    assert calls == [(keys.hash_key(new.key), new.key_hash), (keys.hash_key(wrong), new.key_hash)]
    assert new.key not in {a for pair in calls for a in pair}  # the key itself is never compared


# --- every listening socket is on loopback ----------------------------------------------


def process_tree(root: int) -> list[int]:
    """root and all its descendants, from /proc/<pid>/stat."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited meanwhile
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    return tree


def listening_sockets(root: int) -> list[tuple[str, str, int, int]]:
    """(protocol, address, port, pid) of every listening TCP socket and unconnected UDP socket of the tree."""
    owner = {}
    for pid in process_tree(root):
        fds = Path(f"/proc/{pid}/fd")
        try:
            links = [os.readlink(fd) for fd in fds.iterdir()]
        except OSError:
            continue
        for link in links:
            if link.startswith("socket:["):
                owner[link[8:-1]] = pid
    found = []
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        lines = Path(f"/proc/net/{proto}").read_text().splitlines()[1:]
        for line in lines:
            fields = line.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
            listening = state == "0A" if proto.startswith("tcp") else set(remote.replace(":", "")) == {"0"}
            if listening and inode in owner:
                address, port = local.split(":")
                found.append((proto, str(_proc_net_address(address)), int(port, 16), owner[inode]))
    return found


def _proc_net_address(hex_address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """/proc/net/* writes addresses as 32-bit words in host (little-endian) byte order."""
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return ipaddress.ip_address(words)


def spawned_children(proc: subprocess.Popen) -> int:
    """Processes multiprocessing started under `proc`: the writer and the jobs' process."""
    count = 0
    for pid in process_tree(proc.pid)[1:]:
        try:
            count += b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            pass
    return count


def test_the_socket_listing_sees_what_a_child_binds():
    """The listing walks children and decodes addresses: a child bound to 127.0.0.2 (not 127.0.0.1) shows up."""
    program = (
        "import socket, sys, time\n"
        "t = socket.socket(); t.bind(('127.0.0.2', 0)); t.listen()\n"
        "u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(('127.0.0.2', 0))\n"
        "s = socket.socket(socket.AF_INET6); s.bind(('::1', 0)); s.listen()\n"
        "print(t.getsockname()[1], u.getsockname()[1], s.getsockname()[1], flush=True); time.sleep(30)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", program], stdout=subprocess.PIPE, text=True)
    try:
        tcp, udp, tcp6 = map(int, child.stdout.readline().split())
        found = {(proto, address, port) for proto, address, port, _ in listening_sockets(os.getpid())}
    finally:
        child.kill()
        child.wait()
    assert {("tcp", "127.0.0.2", tcp), ("udp", "127.0.0.2", udp), ("tcp6", "::1", tcp6)} <= found


def start_lectr_default_host(workdir: Path, sim_url: str) -> tuple[subprocess.Popen, int, str]:
    """`mitmdump -s addons/lectr.py` with no --listen-host at all: Lectr's own default decides."""
    db = workdir / "lectr.duckdb"
    new_key = keys.generate_key()
    open_store(db).insert_key("acme", new_key)
    port = free_port()
    options = {
        "lectr_db": db,
        "lectr_rules": workdir / "rules.yaml",
        "lectr_secrets": workdir / "secrets.yaml",
        "confdir": workdir / "confdir",
        "lectr_flush_ms": 100,
        "lectr_aggregate_every": 1,
    }
    proc = start_lectr_process(port, options, simulator_env(sim_url), workdir / "mitmdump.log", host=None)
    return proc, port, new_key.key


@pytest.mark.parametrize("listen_host", ["explicit", "default"])
def test_lectr_and_its_processes_listen_on_loopback_only(listen_host, guarded, simulator_process, tmp_path):
    """--listen-host 127.0.0.1 as the harness passes it, and no --listen-host at all (Lectr's default)."""
    if listen_host == "default":
        proc, port, key = start_lectr_default_host(tmp_path, simulator_process.url)
    else:
        proc, port, key = guarded.proc, guarded.port, guarded.key
    try:
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        body = {"model": "gpt-4o", "messages": MESSAGES}
        wait_until(
            lambda: httpx.post(url, headers={"X-Lectr-Key": key}, json=body).status_code == 200,
            timeout=10,
            what="a request to pass",
        )
        # The writer, then the jobs' process (first aggregation after a second).
        wait_until(lambda: spawned_children(proc) >= 2, timeout=10, what="the writer and the jobs' process")
        sockets = listening_sockets(proc.pid)
    finally:
        if proc is not guarded.proc:
            stop(proc)
    assert ("tcp", "127.0.0.1", port) in {s[:3] for s in sockets}, sockets
    assert [s for s in sockets if s[1] not in LOOPBACK] == []
    if listen_host == "default":
        assert f"proxy listening at 127.0.0.1:{port}" in (tmp_path / "mitmdump.log").read_text()


def start_dashboard(port: int, home: Path, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMLIT_", "LECTR_"))}
    env.update(HOME=str(home), LECTR_DB=str(home / "lectr.duckdb"))  # no ~/.streamlit/config.toml of the user's
    with open(home / "dashboard.log", "w") as log:
        proc = subprocess.Popen(
            [STREAMLIT, "run", "dashboard/app.py", "--server.port", str(port), *args],
            cwd=ROOT,  # where .streamlit/config.toml is read from
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(
            lambda: proc.poll() is not None or httpx.get(f"http://127.0.0.1:{port}/_stcore/health").is_success,
            timeout=30,
            what="the dashboard to listen",
        )
        assert proc.poll() is None, (home / "dashboard.log").read_text()
    except BaseException:
        stop(proc)
        raise
    return proc


def test_the_dashboard_listens_on_loopback_only(tmp_path):
    """With --server.address 127.0.0.1 (as run.sh starts it) and without (.streamlit/config.toml alone)."""
    started = {}
    try:
        for flags in (("--server.address", "127.0.0.1"), ()):
            home = tmp_path / ("flag" if flags else "config")
            home.mkdir()
            port = free_port()
            started[flags] = (start_dashboard(port, home, *flags), port)
        sockets = {flags: listening_sockets(proc.pid) for flags, (proc, _) in started.items()}
    finally:
        for proc, _ in started.values():
            stop(proc)
    for flags, (_, port) in started.items():
        assert ("tcp", "127.0.0.1", port) in {s[:3] for s in sockets[flags]}, (flags, sockets[flags])
        assert [s for s in sockets[flags] if s[1] not in LOOPBACK] == [], flags


def test_haproxy_listens_on_loopback_and_reaches_workers_on_loopback():
    config = haproxy.config(8080, haproxy.worker_addresses(8080, 3) + [9001])
    binds = [line.split()[1] for line in config.splitlines() if line.strip().startswith("bind ")]
    servers = [line.split()[2] for line in config.splitlines() if line.strip().startswith("server ")]
    assert binds == ["127.0.0.1:8080"]
    assert servers == ["127.0.0.2:8080", "127.0.0.3:8080", "127.0.0.4:8080", "127.0.0.1:9001"]
    assert all(ipaddress.ip_address(s.rsplit(":", 1)[0]).is_loopback for s in servers)


# --- owner-only files --------------------------------------------------------------------


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_mitmproxys_ca_private_key_is_owner_only(guarded):
    confdir = guarded.ca_path.parent
    assert b"PRIVATE KEY" in (confdir / "mitmproxy-ca.pem").read_bytes()
    assert b"PRIVATE KEY" not in guarded.ca_path.read_bytes()  # what clients are given: the certificate only
    assert {name: mode(confdir / name) for name in ("mitmproxy-ca.pem", "mitmproxy-ca.p12")} == {
        "mitmproxy-ca.pem": 0o600,
        "mitmproxy-ca.p12": 0o600,
    }


def run_cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    """`lectr ...` under a usual umask (022), so an owner-only file is the command's doing."""
    return subprocess.run(
        [LECTR_CLI, *args],
        input=stdin,
        text=True,
        capture_output=True,
        timeout=60,
        preexec_fn=lambda: os.umask(0o022),
    )


def test_lectr_keys_create_makes_an_owner_only_database(tmp_path):
    db = tmp_path / "new.duckdb"
    done = run_cli("keys", "create", "acme", "--db", str(db))
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip().splitlines()[-1]
    assert mode(db) == 0o600
    assert not Path(f"{db}.wal").exists()
    stamp = keys_stamp(db)
    assert stamp.read_bytes() == b"" and leaks(db.read_bytes(), {"key": key}) == []


def test_lectr_secrets_set_writes_an_owner_only_file_and_keeps_the_rest(tmp_path):
    path = tmp_path / "secrets.yaml"
    path.write_text("# by hand\nproviders:\n  openai: {api_key: sk-openai-kept-0001}\n")
    path.chmod(0o644)
    done = run_cli("secrets", "set", "groq", "--file", str(path), stdin=f"{LECTR_GROQ_KEY}\n")
    assert done.returncode == 0, done.stderr
    assert mode(path) == 0o600
    assert LECTR_GROQ_KEY not in done.stdout + done.stderr
    credentials = parse_credentials(path.read_text(), env={})
    assert credentials.api_key("acme", "groq") == LECTR_GROQ_KEY
    assert credentials.api_key("acme", "openai") == "sk-openai-kept-0001"
    assert path.read_text().startswith("# Lectr secrets") and "not comments" in path.read_text().splitlines()[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secrets.yaml"]  # no temporary file left

    done = run_cli("secrets", "set", "anthropic", "--org", "acme", "--file", str(path), stdin="sk-ant-acme-only-9876")
    assert done.returncode == 0 and mode(path) == 0o600
    assert yaml.safe_load(path.read_text())["orgs"]["acme"]["providers"]["anthropic"] == {
        "api_key": "sk-ant-acme-only-9876"
    }
    listing = run_cli("secrets", "list", "--file", str(path))
    assert listing.returncode == 0 and listing.stderr == ""
    assert listing.stdout.splitlines() == [
        "openai  (every org)  ...0001",
        f"groq  (every org)  ...{LECTR_GROQ_KEY[-4:]}",
        "anthropic  acme  ...9876",
    ]


def test_lectr_secrets_set_never_takes_the_key_as_an_argument(tmp_path):
    done = run_cli("secrets", "set", "groq", LECTR_GROQ_KEY, "--file", str(tmp_path / "secrets.yaml"))
    assert done.returncode == 2 and "unrecognized arguments" in done.stderr
    assert not (tmp_path / "secrets.yaml").exists()


def test_run_scripts_make_everything_they_create_owner_only():
    """run.sh and workers.sh set umask 077 before creating the database, rules, logs or starting anything."""
    for script in ("run.sh", "workers.sh"):
        lines = (ROOT / "scripts" / script).read_text().splitlines()
        assert "umask 077" in lines, script
        at = lines.index("umask 077")
        first_creation = min(
            i
            for i, line in enumerate(lines)
            if not line.startswith("#") and any(w in line for w in ("prepare_store", "mitmdump", "streamlit run"))
        )
        assert at < first_creation, script
