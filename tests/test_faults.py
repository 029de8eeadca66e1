"""Fault injection: each fault Lectr promises to survive, made to happen to the real, running proxy.

Every test asserts the same three things: traffic keeps flowing, responses are what they
would have been without Lectr (or a clear JSON error where the provider never answered),
and the right event or counter is recorded. Faults come from outside where they can
(a killed or stopped process, a locked, read-only, full or deleted database, a provider
that resets its connection); from a failpoint (lectr/common/faults.py) where nothing outside
can make Lectr's own code fail.
"""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import httpx
import openai
import pytest

from lectr.store.duckdb_connection import connect

from helpers import (
    ROOT,
    dropped,
    free_port,
    hold_database,
    rows,
    send_chats,
    start_lectr,
    stop,
    wait_rows,
    wait_until,
    writer_processes,
)

MESSAGES = [{"role": "user", "content": "hello"}]
BODY = {"model": "gpt-4o", "messages": MESSAGES}


def health(lectr) -> dict:
    return httpx.get(f"{lectr.url}/healthz", timeout=5).json()


def headers(lectr, feature: str, **extra: str) -> dict:
    return {"X-Lectr-Key": lectr.key, "X-Lectr-Feature": feature, "Authorization": "Bearer sk-c", **extra}


def no_duplicates(db) -> None:
    with connect(db, read_only=True) as con:
        total, distinct = con.execute("SELECT count(*), count(DISTINCT request_id) FROM request_logs").fetchone()
    assert total == distinct, f"{total - distinct} rows written twice"


# --- rules ------------------------------------------------------------------------------

RULE = """
rules:
  - name: mini for tagger
    priority: 1
    match: {feature: tagger}
    target: {model: gpt-4o-mini}
"""


def _model_sent(lectr, sim) -> str:
    sim.clear()
    r = httpx.post(f"{lectr.url}/v1/chat/completions", json=BODY, headers=headers(lectr, "tagger"), timeout=10)
    assert r.status_code == 200 and "x-lectr-error" not in r.headers
    return sim.received()[-1]["body"]["model"]


def test_rules_file_missing_deleted_truncated_empty_or_invalid_keeps_traffic_flowing(simulator_process, sim, tmp_path):
    lectr = start_lectr(tmp_path, simulator_process.url, options={"lectr_flush_ms": 100})
    lectr.rules_path.unlink()
    try:
        # No rules loaded at all (a cold cache): everything passes through unrouted.
        assert _model_sent(lectr, sim) == "gpt-4o"
        loads = lectr.log().count("rules loaded")
        lectr.rules_path.write_text(RULE)
        wait_until(lambda: lectr.log().count("rules loaded") > loads, timeout=5, what="the rules to load")
        assert _model_sent(lectr, sim) == "gpt-4o-mini"

        bad_saves = {
            "truncated mid-write": RULE[: RULE.index("target")],
            "empty (truncated before the write)": "",
            "invalid": "rules: [ {name: x, priority: 1",
        }
        for what, text in bad_saves.items():
            with open(lectr.rules_path, "w") as f:  # in place, as an editor without atomic saves does
                f.write(text)
            wait_until(lambda: lectr.log().count("rejected") >= list(bad_saves).index(what) + 1, 5, what)
            assert _model_sent(lectr, sim) == "gpt-4o-mini", what  # the last good rules stay in force
        lectr.rules_path.unlink()
        wait_until(lambda: "was removed; keeping the last good contents" in lectr.log(), 5, "the removal")
        assert _model_sent(lectr, sim) == "gpt-4o-mini"
        assert "to remove every rule, save it as 'rules: []'" in lectr.log()

        lectr.rules_path.write_text("rules: []\n")  # removing every rule is still possible, deliberately
        wait_until(lambda: lectr.log().count("rules loaded") > loads + 1, 5, "the empty rule list")
        assert _model_sent(lectr, sim) == "gpt-4o"
    finally:
        stop(lectr.proc)
    assert len(rows(lectr.db_path, "feature = 'tagger' AND status_code = 200")) == 7


def test_a_rule_evaluation_that_raises_forwards_the_request_unchanged(simulator_process, sim, tmp_path):
    lectr = start_lectr(
        tmp_path,
        simulator_process.url,
        rules=RULE,
        env={"LECTR_FAILPOINTS": "rules.evaluate"},
        options={"lectr_flush_ms": 100},
    )
    try:
        client = openai.OpenAI(
            base_url=f"{lectr.url}/v1", api_key="sk-c", default_headers=headers(lectr, "tagger"), max_retries=0
        )
        reply = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        assert reply.choices[0].message.content and "".join(c.choices[0].delta.content or "" for c in stream)
        assert [r["body"]["model"] for r in sim.received()] == ["gpt-4o", "gpt-4o"]  # not rewritten, not failed
        assert [r["headers"]["authorization"] for r in sim.received()] == ["Bearer sk-c"] * 2
        logged = wait_rows(lectr.db_path, 2, "feature = 'tagger'")
        assert "routing failed; forwarding unchanged" in lectr.log()
    finally:
        stop(lectr.proc)
    for row in logged:
        assert row["status_code"] == 200 and row["error_category"] is None and row["rule_id"] is None
        assert "InjectedFault" in row["passthrough_reason"]


def test_an_unknown_model_goes_to_openai_and_is_flagged(lectr, sim):
    client = openai.OpenAI(
        base_url=f"{lectr.url}/v1", api_key="sk-c", default_headers=headers(lectr, "mystery"), max_retries=0
    )
    assert client.chat.completions.create(model="mystery-model-9", messages=MESSAGES).choices
    (got,) = sim.received()
    assert got["path"] == "/v1/chat/completions" and got["body"]["model"] == "mystery-model-9"
    (row,) = wait_rows(lectr.db_path, 1, "feature = 'mystery'")
    assert row["provider"] == "openai" and row["provider_unknown"] is True and row["status_code"] == 200


# --- the event queue and the database -----------------------------------------------------


def _latencies(lectr, feature: str, n: int) -> list[float]:
    out = []
    with httpx.Client(timeout=10) as client:
        for _ in range(n):
            started = time.perf_counter()
            r = client.post(f"{lectr.url}/v1/chat/completions", json=BODY, headers=headers(lectr, feature))
            out.append(time.perf_counter() - started)
            assert r.status_code == 200
    return out


def test_a_stalled_writer_fills_the_queue_drops_are_counted_and_latency_does_not_change(simulator_process, tmp_path):
    lectr = start_lectr(
        tmp_path, simulator_process.url, options={"lectr_queue_size": 20, "lectr_batch_size": 5, "lectr_flush_ms": 50}
    )
    try:
        _latencies(lectr, "warm", 1)
        wait_rows(lectr.db_path, 1, "feature = 'warm'")  # the writer process is up
        before = statistics.median(_latencies(lectr, "warm", 60))

        # Every warm event stored or counted dropped: the writer process's own queue (20 too) may have
        # dropped some of a burst, and those counts reach the database, not the proxy's health.
        def warm() -> int:
            return len(rows(lectr.db_path, "feature = 'warm'")) + dropped(lectr.db_path).get("queue_full", 0)

        wait_until(lambda: warm() == 61, 10, "the writer to catch up")
        dropped_before = dropped(lectr.db_path).get("queue_full", 0)
        [writer] = writer_processes(lectr.proc.pid)
        os.kill(writer, signal.SIGSTOP)  # the writer hangs (a stuck disk, a debugger)
        try:
            stalled = statistics.median(_latencies(lectr, "stalled", 300))
            status = health(lectr)
        finally:
            os.kill(writer, signal.SIGCONT)
        # Noisy 2-core machines: 'unchanged' is within 2x or 5 ms, whichever is larger.
        assert stalled < max(2 * before, before + 0.005), (before, stalled)
        assert status["events_dropped"] > 0 and status["events_queued"] == 20
    finally:
        stop(lectr.proc)
    stored = len(rows(lectr.db_path, "feature = 'stalled'"))
    assert stored < 300 and stored + dropped(lectr.db_path)["queue_full"] - dropped_before == 300  # all accounted for
    no_duplicates(lectr.db_path)


def test_a_database_locked_by_another_process_for_30s_delays_rows_and_writes_each_once(simulator_process, tmp_path):
    lectr = start_lectr(tmp_path, simulator_process.url, options={"lectr_flush_ms": 100})
    holder = hold_database(lectr.db_path, 30)
    try:
        sent = 0
        deadline = time.monotonic() + 28
        while time.monotonic() < deadline:  # traffic all through the lock
            assert send_chats(lectr, "locked", 5) == [200] * 5
            sent += 5
            time.sleep(1)
        assert "cannot write" in lectr.log() and holder.poll() is None
        holder.wait(10)  # the lock goes with the process
        wait_rows(lectr.db_path, sent, "feature = 'locked'", timeout=60)  # after the writer's backoff
        assert health(lectr)["events_dropped"] == 0
    finally:
        holder.kill()
        stop(lectr.proc)
    assert len(rows(lectr.db_path, "feature = 'locked'")) == sent
    assert dropped(lectr.db_path).get("db_unavailable", 0) == 0
    no_duplicates(lectr.db_path)


@pytest.fixture
def small_disk(tmp_path):
    """A 64 MB tmpfs: a file system that can really be filled, or made read-only."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _proxy_on(disk: Path, simulator_url: str, workdir: Path):
    """Lectr writing to the small disk, reading its keys from the work dir's file (lectr_keys_db)."""
    return start_lectr(
        workdir,
        simulator_url,
        options={
            "lectr_flush_ms": 100,
            "lectr_db": str(disk / "l.duckdb"),
            "lectr_keys_db": str(workdir / "lectr.duckdb"),
        },
    )


def _fill(disk: Path) -> Path:
    filler = disk / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * (1 << 20))
                f.flush()
        except OSError:
            pass
    return filler


def test_a_full_disk_delays_rows_and_writing_resumes_when_there_is_room(simulator_process, small_disk, tmp_path):
    lectr = _proxy_on(small_disk, simulator_process.url, tmp_path / "work")
    db = small_disk / "l.duckdb"
    try:
        assert send_chats(lectr, "before", 3) == [200] * 3
        wait_rows(db, 3, "feature = 'before'")
        filler = _fill(small_disk)
        assert send_chats(lectr, "full", 20) == [200] * 20
        wait_until(lambda: "No space left on device" in lectr.log(), 15, "the writer to hit the full disk")
        filler.unlink()
        wait_rows(db, 20, "feature = 'full'", timeout=60)
        assert send_chats(lectr, "after", 3) == [200] * 3
        wait_rows(db, 3, "feature = 'after'")
    finally:
        stop(lectr.proc)
    assert dropped(db).get("db_unavailable", 0) == 0
    no_duplicates(db)


def test_an_unwritable_database_delays_rows_and_writing_resumes(simulator_process, small_disk, tmp_path):
    lectr = _proxy_on(small_disk, simulator_process.url, tmp_path / "work")
    db = small_disk / "l.duckdb"
    try:
        subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)  # even root cannot write
        assert send_chats(lectr, "readonly", 10) == [200] * 10
        wait_until(lambda: "Read-only file system" in lectr.log(), 15, "the writer to fail")
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
        wait_rows(db, 10, "feature = 'readonly'", timeout=60)
    finally:
        stop(lectr.proc)
    no_duplicates(db)


def test_a_deleted_database_is_created_again_and_the_keys_in_memory_keep_serving(simulator_process, tmp_path):
    lectr = start_lectr(tmp_path, simulator_process.url, options={"lectr_flush_ms": 100})
    try:
        assert send_chats(lectr, "before", 3) == [200] * 3
        wait_rows(lectr.db_path, 3, "feature = 'before'")
        for path in tmp_path.glob("lectr.duckdb*"):
            path.unlink()
        assert send_chats(lectr, "after", 5) == [200] * 5  # the keys Lectr holds still count
        wait_rows(lectr.db_path, 5, "feature = 'after'")  # a new file, with the schema
        wait_until(lambda: "holds no keys at all" in lectr.log(), 10, "the new key store to be refused")
        assert send_chats(lectr, "later", 3) == [200] * 3
    finally:
        stop(lectr.proc)
    assert len(rows(lectr.db_path, "feature IN ('after', 'later')")) == 8
    no_duplicates(lectr.db_path)


# --- background jobs and the dashboard ---------------------------------------------------


def test_failing_jobs_are_logged_retried_and_never_touch_traffic(simulator_process, tmp_path):
    lectr = start_lectr(
        tmp_path,
        simulator_process.url,
        env={"LECTR_FAILPOINTS": "anomalies.run=2,recommend.run=2"},
        options={"lectr_flush_ms": 100, "lectr_anomalies_every": 1, "lectr_recommend_every": 1},
    )

    def ran(job: str) -> bool:
        with connect(lectr.db_path, read_only=True) as con:
            return bool(con.execute("SELECT count(*) FROM worker_runs WHERE worker = ?", [job]).fetchone()[0])

    try:
        assert send_chats(lectr, "jobs", 10) == [200] * 10
        wait_until(lambda: ran("anomalies") and ran("recommend"), 30, "both jobs to succeed after failing")
        assert send_chats(lectr, "jobs", 10) == [200] * 10
        log = lectr.log()
        assert log.count("background job failed") >= 4 and "InjectedFault: failpoint 'anomalies.run'" in log
    finally:
        stop(lectr.proc)
    assert len(rows(lectr.db_path, "feature = 'jobs'")) == 20


def test_the_dashboard_crashing_or_hanging_mid_read_leaves_the_proxy_serving(simulator_process, tmp_path):
    lectr = start_lectr(tmp_path, simulator_process.url, options={"lectr_flush_ms": 100})
    port = free_port()
    env = {**os.environ, "LECTR_DB": str(lectr.db_path), "LECTR_RULES": str(lectr.rules_path)}
    dashboard = subprocess.Popen(
        [str(Path(sys.executable).with_name("streamlit")), "run", "dashboard/app.py", "--server.port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    reader = None
    try:
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/_stcore/health").status_code == 200, 60, "streamlit")
        assert send_chats(lectr, "dash", 5) == [200] * 5
        dashboard.kill()  # a crash: no clean shutdown
        dashboard.wait(10)
        assert send_chats(lectr, "dash", 5) == [200] * 5
        # A dashboard that dies holding the file open (mid-query): the lock goes with it.
        reader = subprocess.Popen(
            [
                sys.executable,
                "-c",
                # Opened as the dashboard opens it: retried while the writer holds its moment of the file.
                "import sys, time; from lectr.store.duckdb_connection import connect; "
                "c = connect(sys.argv[1], read_only=True, attempts=200).__enter__(); "
                "print('reading', flush=True); time.sleep(60)",
                str(lectr.db_path),
            ],
            stdout=subprocess.PIPE,
            cwd=ROOT,
        )
        assert reader.stdout.readline() == b"reading\n"
        assert send_chats(lectr, "dash", 5) == [200] * 5
        reader.kill()
        wait_rows(lectr.db_path, 15, "feature = 'dash'", timeout=60)
    finally:
        dashboard.kill()
        if reader:
            reader.kill()
        stop(lectr.proc)
    no_duplicates(lectr.db_path)


# --- upstream faults ----------------------------------------------------------------------


class FaultyProvider:
    """An OpenAI-style upstream that misbehaves on purpose, at the socket level (X-Fault header)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def close(self) -> None:
        self.sock.close()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            fields = dict(line.decode().lower().split(": ", 1) for line in head.split(b"\r\n")[1:] if b": " in line)
            while len(body) < int(fields.get("content-length", 0)):
                body += conn.recv(65536)
            fault = fields.get("x-fault", "")
            if fault.startswith("status-"):
                status = int(fault[7:])
                payload = b'{"error": {"message": "provider says %d", "type": "x", "code": "c%d"}}' % (status, status)
                conn.sendall(
                    b"HTTP/1.1 %d Oops\r\ncontent-type: application/json\r\nx-provider: yes\r\n"
                    b"content-length: %d\r\n\r\n%s" % (status, len(payload), payload)
                )
                return
            if fault == "slow":
                time.sleep(4)
                return
            if fault == "reset-mid-body":
                conn.sendall(b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n{"id"')
            elif fault == "linger-after-done":  # the whole stream, then a while before the body's end
                done = b'data: {"choices": [{"index": 0, "delta": {"content": "hi"}}]}\n\ndata: [DONE]\n\n'
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
                    + b"%x\r\n%s\r\n" % (len(done), done)
                )
                time.sleep(1)
                conn.sendall(b"0\r\n\r\n")
                return
            elif fault == "reset-mid-stream":
                event = b'data: {"choices": [{"index": 0, "delta": {"content": "hi"}}]}\n\n'
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
                    + b"%x\r\n%s\r\n" % (len(event), event) * 2
                )
                time.sleep(0.3)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST


@pytest.fixture(scope="module")
def faulty(simulator_process, tmp_path_factory):
    provider = FaultyProvider()
    lectr = start_lectr(
        tmp_path_factory.mktemp("faulty"),
        simulator_process.url,
        env={
            "LECTR_OPENAI_BASE_URL": f"http://127.0.0.1:{provider.port}/v1",
            "LECTR_GROQ_BASE_URL": f"http://127.0.0.1:{free_port()}/openai/v1",  # nothing listens: refused
        },
        options={"lectr_flush_ms": 100, "lectr_upstream_timeout": 1, "lectr_client_timeout": 2},
    )
    yield lectr
    stop(lectr.proc)
    provider.close()


@pytest.mark.parametrize(
    "fault, model, status, category",
    [
        ("refused", "llama-3.1-8b-instant", 502, "connection"),
        ("reset-mid-body", "gpt-4o", 502, "connection"),
        ("slow", "gpt-4o", 504, "timeout"),
        ("status-429", "gpt-4o", 429, "rate_limit"),
        ("status-500", "gpt-4o", 500, "upstream_5xx"),
        ("status-503", "gpt-4o", 503, "upstream_5xx"),
    ],
)
def test_upstream_faults_pass_through_or_get_a_clear_json_error(faulty, fault, model, status, category):
    r = httpx.post(
        f"{faulty.url}/v1/chat/completions",
        json={"model": model, "messages": MESSAGES},
        headers=headers(faulty, f"up-{fault}", **{"X-Fault": fault}),
        timeout=10,
    )
    assert r.status_code == status
    if fault.startswith("status-"):  # the provider answered: exactly its answer
        assert r.headers["x-provider"] == "yes" and "x-lectr-error" not in r.headers
        assert r.json()["error"]["message"] == f"provider says {status}"
    else:  # it did not: Lectr's JSON error
        assert r.headers["x-lectr-error"] == "1" and r.json()["error"]["message"].startswith("Lectr: ")
    (row,) = wait_rows(faulty.db_path, 1, "feature = ?", [f"up-{fault}"])
    assert (row["status_code"], row["error_category"]) == (status, category)
    assert health(faulty)["status"] == "ok"


def stream(lectr, feature: str, fault: str):
    """A streaming chat request through `lectr`, the provider told to misbehave (X-Fault)."""
    return httpx.stream(
        "POST",
        f"{lectr.url}/v1/chat/completions",
        json={**BODY, "stream": True},
        headers=headers(lectr, feature, **{"X-Fault": fault}),
        timeout=10,
    )


def test_an_upstream_reset_mid_stream_ends_the_clients_stream_and_is_recorded(faulty):
    got = b""
    with pytest.raises(httpx.RemoteProtocolError):
        with stream(faulty, "up-reset-mid-stream", "reset-mid-stream") as r:
            assert r.status_code == 200
            for chunk in r.iter_raw():
                got += chunk
    assert got.count(b'"content": "hi"') == 2  # what the provider sent before it broke, unchanged
    (row,) = wait_rows(faulty.db_path, 1, "feature = 'up-reset-mid-stream'")
    assert row["error_category"] == "connection" and row["streaming"] is True


def test_a_client_that_closes_after_the_last_event_is_not_recorded_as_aborted(faulty):
    """What the OpenAI SDK does after [DONE]; the provider's end of body comes a second later."""
    with stream(faulty, "done-then-close", "linger-after-done") as r:
        got = b""
        for chunk in r.iter_raw():
            got += chunk
            if b"[DONE]" in got:
                break  # and close, before the body ends
    (row,) = wait_rows(faulty.db_path, 1, "feature = 'done-then-close'")
    assert (row["status_code"], row["error_category"]) == (200, None)


# --- client faults ------------------------------------------------------------------------


def _raw_request(lectr, body_sent: bytes, content_length: int, feature: str) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", lectr.port))
    s.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        b"x-lectr-key: %s\r\nx-lectr-feature: %s\r\ncontent-length: %d\r\n\r\n%s"
        % (lectr.key.encode(), feature.encode(), content_length, body_sent)
    )
    return s


def _read_all(s: socket.socket) -> bytes:
    out = b""
    s.settimeout(10)
    while chunk := s.recv(65536):
        out += chunk
    return out


def test_a_client_sending_its_body_too_slowly_gets_408_and_is_recorded(faulty):
    s = _raw_request(faulty, b'{"model": "gpt', 200, "slow-body")
    started = time.monotonic()
    for _ in range(3):  # a byte now and then keeps the connection busy, not the request alive
        time.sleep(0.5)
        s.sendall(b" ")
    answer = _read_all(s)
    s.close()
    assert answer.startswith(b"HTTP/1.1 408") and b'"code": "client_timeout"' in answer
    assert 1.8 < time.monotonic() - started < 6
    (row,) = wait_rows(faulty.db_path, 1, "feature = 'slow-body'")
    assert (row["status_code"], row["error_category"]) == (408, "client_aborted")


def test_a_truncated_body_is_recorded_as_client_aborted(faulty):
    s = _raw_request(faulty, b'{"model": "gpt-4o", "mess', 200, "truncated")
    s.shutdown(socket.SHUT_WR)
    _read_all(s)
    s.close()
    (row,) = wait_rows(faulty.db_path, 1, "feature = 'truncated'")
    assert row["error_category"] == "client_aborted"


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _abusive_clients(lectr, n: int) -> None:
    def one(i: int) -> None:
        if i % 3 == 0:  # leaves mid-stream
            with stream(lectr, "abuse", "reset-mid-stream") as r:
                next(r.iter_raw())
        elif i % 3 == 1:  # truncated body
            s = _raw_request(lectr, b'{"model"', 100, "abuse")
            s.close()
        else:  # too slow: cut by lectr_client_timeout
            s = _raw_request(lectr, b"{", 100, "abuse")
            _read_all(s)
            s.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)


def test_abusive_clients_leak_no_flows_timers_tasks_or_memory(faulty):
    _abusive_clients(faulty, 60)  # warm-up: first-use allocations
    wait_until(lambda: health(faulty)["client_deadlines"] == 0, 10, "the warm-up to settle")
    before, rss_before = health(faulty), _rss_kb(faulty.proc.pid)
    _abusive_clients(faulty, 240)
    wait_until(lambda: health(faulty)["client_deadlines"] == 0, 10, "the slow clients to be cut")
    after = health(faulty)
    assert after["requests_admitted"] - before["requests_admitted"] == 240
    assert after["events_emitted"] == after["requests_admitted"]  # every flow ended, each with its event
    assert after["upstream_deadlines"] == 0 and after["client_deadlines"] == 0
    assert after["connections"] <= 2 and after["tasks"] <= before["tasks"] + 2
    assert _rss_kb(faulty.proc.pid) - rss_before < 8 * 1024, "RSS grew by 8 MB or more"
    assert faulty.alive()


# --- shutdown --------------------------------------------------------------------------------


def test_sigterm_flushes_queued_events_and_a_restart_continues_the_same_database(simulator_process, tmp_path):
    first = start_lectr(tmp_path, simulator_process.url, options={"lectr_flush_ms": 600_000})
    assert send_chats(first, "run-1", 25) == [200] * 25
    assert health(first)["events_queued"] == 25  # nothing written yet
    first.proc.send_signal(signal.SIGTERM)
    assert first.proc.wait(20) == 0
    assert len(rows(first.db_path, "feature = 'run-1'")) == 25

    second = start_lectr(tmp_path, simulator_process.url, options={"lectr_flush_ms": 100})
    try:
        assert send_chats(second, "run-2", 5) == [200] * 5
        assert send_chats(replace(second, key=first.key), "run-2", 5) == [200] * 5  # the first run's key still works
        wait_rows(second.db_path, 10, "feature = 'run-2'")
    finally:
        stop(second.proc)
    assert len(rows(second.db_path, "feature = 'run-1'")) == 25
    no_duplicates(second.db_path)
