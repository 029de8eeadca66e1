"""End to end in a real browser: the demo fills a database through the real proxy, `streamlit run`
serves the dashboard on it, and headless Chromium (Debian's `chromium` package) renders the overview.

The test waits until the page shows the data, checks the headline figures, and saves a screenshot
(under pytest's tmp_path, and copied to $LECTR_ARTIFACTS when that is set).

Why not `chromium --dump-dom` / `--screenshot`: Streamlit sends the page over a websocket after the
HTML has loaded, and those flags capture the page at load plus a `--virtual-time-budget`. Virtual
time runs ahead of the real time the app takes to run the script, so whether the data is in the
capture depends on the machine's speed. Instead the test drives Chromium over the DevTools protocol
(`--remote-debugging-pipe`: JSON messages on file descriptors 3 and 4, no port, no extra package)
and waits for the rendered page itself.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import duckdb
import httpx
import pytest

from lectr import rulehealth, storage

from conftest import ROOT, free_port, stop, wait_until

SKIP_REASON = "Chromium is not installed (bash scripts/setup.sh test installs Debian's chromium package as root)"
WIDTH, HEIGHT = 1400, 2200  # tall enough for the whole overview: the screenshot is of the viewport
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # the test may run as root (CI containers), where the sandbox refuses to start
    "--disable-gpu",
    # The test machine may have no internet: without these Chromium keeps trying Google's hosts
    # (component updates, variations, sync, QUIC probes), which only adds noise and delay.
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    f"--window-size={WIDTH},{HEIGHT}",
]
METRICS = ("Requests", "Cost", "Tokens", "Error rate", "Routing coverage")

# What the page shows, read from the rendered DOM. Streamlit marks its elements with data-testid and
# says on the app's root whether the script is still running.
PAGE_STATE = """(() => {
  const all = (selector, root = document) => [...root.querySelectorAll(selector)];
  const text = (el) => (el ? el.innerText.trim() : null);
  const app = document.querySelector('[data-testid="stApp"]');
  const charts = all('[data-testid="stVegaLiteChart"]');
  return {
    script: app ? app.dataset.testScriptState : null,
    connection: app ? app.dataset.testConnectionState : null,
    title: text(document.querySelector('[data-testid="stMain"] h1')),
    metrics: all('[data-testid="stMetric"]').map((m) => [
      text(m.querySelector('[data-testid="stMetricLabel"]')),
      text(m.querySelector('[data-testid="stMetricValue"]')),
    ]),
    charts: charts.length,
    charts_drawn: charts.filter((c) => c.querySelector("canvas, svg.marks")).length,
    tables: all('[data-testid="stDataFrame"]').length,
    // The data grid draws on a canvas; it also keeps its cells in an accessible table: glide-cell-COL-ROW.
    table_rows: all('[data-testid="stDataFrame"] td[data-testid^="glide-cell-"]').reduce((rows, td) => {
      const [col, row] = td.dataset.testid.split("-").slice(2).map(Number);
      (rows[row] ||= [])[col] = text(td);
      return rows;
    }, []),
    alerts: all('[data-testid="stAlert"]').map(text),
    exceptions: all('[data-testid="stException"]').map(text),
    text: document.body ? document.body.innerText : "",
  };
})()"""


class Browser:
    """Headless Chromium driven over the DevTools protocol on a pipe: one tab, a few commands."""

    def __init__(self, profile: Path, log_path: Path):
        self.log_path = log_path
        to_browser_r, self._out = os.pipe()
        self._in, from_browser_w = os.pipe()
        # `--remote-debugging-pipe` reads commands from fd 3 and writes replies to fd 4: hand the pipes
        # over as stdin and stdout and let the shell move them there.
        with open(log_path, "w") as log:
            self.proc = subprocess.Popen(
                ["sh", "-c", 'exec "$@" 3<&0 4>&1 </dev/null >&2', "chromium", shutil.which("chromium"),
                 *CHROMIUM_FLAGS, "--remote-debugging-pipe", f"--user-data-dir={profile}", "about:blank"],
                stdin=to_browser_r, stdout=from_browser_w, stderr=log,
                start_new_session=True,  # its own process group: the zygote and renderers go with it
            )  # fmt: skip
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._ids = 0
        self.session: str | None = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def _receive(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._in], [], [], left)[0]:
                raise TimeoutError(f"Chromium did not answer in time; its log:\n{self.log()}")
            chunk = os.read(self._in, 1 << 20)
            if not chunk:
                raise RuntimeError(f"Chromium exited; its log:\n{self.log()}")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)

    def send(self, method: str, timeout: float = 15, **params) -> dict:
        """Send a command (to the attached tab, once there is one) and return its result."""
        self._ids += 1
        command = {"id": self._ids, "method": method, "params": params}
        if self.session and not method.startswith(("Target.", "Browser.")):
            command["sessionId"] = self.session
        data = json.dumps(command).encode() + b"\0"
        while data:
            data = data[os.write(self._out, data) :]
        deadline = time.monotonic() + timeout
        while True:
            reply = self._receive(deadline)  # events (no id) are not needed here
            if reply.get("id") == self._ids:
                if "error" in reply:
                    raise RuntimeError(f"{method} failed: {reply['error']}")
                return reply["result"]

    def open(self, url: str) -> None:
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.send("Page.navigate", url=url)

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path) -> None:
        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", timeout=30, format="png")["data"]))

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                self.send("Browser.close", timeout=5)
            self.proc.wait(10)
        except (OSError, RuntimeError, TimeoutError, subprocess.TimeoutExpired):
            pass
        finally:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # whatever is left of the group started above
            except ProcessLookupError:
                pass
            self.proc.wait(5)
            os.close(self._in)
            os.close(self._out)


def fill_database(workdir: Path) -> tuple[Path, Path]:
    """Demo traffic through the real proxy (scripts/demo.py runs its own simulator and mitmdump)."""
    db, rules = workdir / "lectr.duckdb", workdir / "rules.yaml"
    args = ["--db", str(db), "--rules", str(rules), "--requests", "200", "--spike", "40", "--history-days", "2"]
    demo = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py"), *args],
        cwd=workdir, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert demo.returncode == 0, f"scripts/demo.py failed:\n{demo.stdout}\n{demo.stderr}"
    return db, rules


def start_dashboard(workdir: Path, db: Path, rules: Path, log_path: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    args = [
        sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "app.py"),
        "--server.headless", "true", "--server.address", "127.0.0.1", "--server.port", str(port),
        "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("LECTR_")}
    env.update(LECTR_DB=str(db), LECTR_RULES=str(rules))
    with open(log_path, "w") as log:
        proc = subprocess.Popen(args, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: proc.poll() is not None or httpx.get(f"{url}/_stcore/health", timeout=1).status_code == 200,
            timeout=30,
            what="streamlit to answer /_stcore/health",
        )
        assert proc.poll() is None, f"streamlit exited:\n{log_path.read_text(errors='replace')}"
    except BaseException:
        stop(proc)
        raise
    return proc, url


def overview_ready(state: dict | None) -> bool:
    """The script has finished and the overview is on the page down to its last element, the routing
    table, with every chart and the table drawn (they draw a moment after their elements arrive)."""
    return bool(
        state
        and state["script"] == "notRunning"
        and ((state["metrics"] and state["table_rows"]) or state["exceptions"])
        and state["charts_drawn"] == state["charts"]
    )


def test_overview_renders_in_chromium(tmp_path):
    if shutil.which("chromium") is None:
        pytest.skip(SKIP_REASON)
    took = {}  # seconds per phase, printed with the screenshot's path
    started = time.monotonic()
    db, rules = fill_database(tmp_path)
    took["demo traffic"], started = time.monotonic() - started, time.monotonic()

    screenshot = tmp_path / "dashboard-overview.png"
    dashboard, url = start_dashboard(tmp_path, db, rules, tmp_path / "streamlit.log")
    took["streamlit start"], started = time.monotonic() - started, time.monotonic()
    try:
        browser = Browser(tmp_path / "chromium-profile", tmp_path / "chromium.log")
        try:
            browser.open(url)
            # Ready twice in a row, a poll apart: the page has stopped changing.
            state = previous = None
            deadline = time.monotonic() + 45
            while time.monotonic() < deadline and not (overview_ready(state) and state == previous):
                time.sleep(0.25)
                previous, state = state, browser.evaluate(PAGE_STATE)
            took["page render"] = time.monotonic() - started
            # Whatever happened, keep the evidence: the screenshot and the rendered DOM.
            browser.screenshot(screenshot)
            (tmp_path / "dashboard-overview.html").write_text(
                browser.evaluate("document.documentElement.outerHTML") or ""
            )
        finally:
            browser.close()
    finally:
        stop(dashboard)

    if artifacts := os.environ.get("LECTR_ARTIFACTS"):
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, Path(artifacts) / screenshot.name)
    print(f"\nscreenshot: {screenshot}")
    print("took: " + ", ".join(f"{phase} {seconds:.1f}s" for phase, seconds in took.items()))

    page = {k: v for k, v in (state or {}).items() if k != "text"}
    assert overview_ready(state), f"the overview did not finish rendering in 45 s: {page}"
    assert not state["exceptions"], f"the page shows an exception: {state['exceptions']}"
    assert "Traceback" not in state["text"], state["text"]
    assert state["connection"] == "CONNECTED"
    assert state["title"] == "Overview · acme"  # the org selector defaults to the first org

    metrics = dict(state["metrics"])
    assert list(metrics) == list(METRICS), page
    requests = metrics["Requests"].replace(",", "")
    assert requests.isdigit() and int(requests) > 0, metrics
    assert metrics["Cost"].startswith("$") and metrics["Cost"] != "$0.00", metrics
    assert int(metrics["Tokens"].replace(",", "")) > int(requests), metrics
    for label in ("Error rate", "Routing coverage"):
        assert 0 <= float(metrics[label].removesuffix("%")) <= 100, metrics
    assert state["charts"] >= 8, page  # six time series, cost by feature and by model

    # The routing coverage table: one row per rule plus the traffic no rule routed; it adds up to the
    # headline figures.
    assert "Routing coverage" in state["text"]
    rows = {row[0]: int(row[1]) for row in state["table_rows"]}
    assert "passed through (no rule)" in rows and len(rows) > 1, rows
    assert sum(rows.values()) == int(requests), (rows, metrics)
    routed = sum(n for rule, n in rows.items() if rule != "passed through (no rule)")
    assert metrics["Routing coverage"] == f"{100 * routed / int(requests):.1f}%", (rows, metrics)
    assert not state["alerts"], f"the page shows warnings or errors: {state['alerts']}"

    assert screenshot.stat().st_size > 50_000, "the screenshot is suspiciously small (a blank page?)"


NOT_FOUND = "404 model_not_found: The model `gpt-5-nanno` does not exist or you do not have access to it."
SEARCH_RULE = """
  - name: Search on nano
    priority: 30
    match: {feature: search, model: gpt-4o}
    target: {model: gpt-5-nanno}
"""


def add_fallbacks(db: Path, rules: Path) -> None:
    """A rule with a misspelt target on top of the demo: three fallbacks, then suspended (the newest rows)."""
    with duckdb.connect(str(db), read_only=True) as con:
        [(latest,)] = con.execute("SELECT max(ts) FROM request_logs").fetchall()
    base = dict(org_id="acme", endpoint="/chat/completions", provider="openai", model_requested="gpt-4o",
                model_actual="gpt-4o", feature="search", status_code=200, skipped_rule_id="search-on-nano",
                prompt_tokens=1830, completion_tokens=212, cost_usd=0.006695, price_source="bundled")  # fmt: skip
    fallback = dict(fallback_model="gpt-5-nanno", fallback_status=404, fallback_error=NOT_FOUND, fallback_ms=212.0)
    suspended = dict(route_skip_reason=f"{rulehealth.SUSPENDED}rule 'search-on-nano' failed 3 times in a row")
    base |= dict.fromkeys([*fallback, *suspended])  # every row has every column
    storage.append_request_logs(
        db,
        [
            base | dict(ts=latest + timedelta(seconds=s), request_id=f"search-{s}") | (suspended if s > 3 else fallback)
            for s in range(1, 6)
        ],
    )
    storage.aggregate(db)
    rules.write_text(rules.read_text() + SEARCH_RULE)


def render(browser: Browser, url: str, timeout: float = 45) -> dict | None:
    """Open the page and return its state once the script has finished and a poll later nothing changed."""
    browser.open(url)
    state = previous = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.25)
        previous, state = state, browser.evaluate(PAGE_STATE)
        done = state and state["script"] == "notRunning" and (state["table_rows"] or state["exceptions"])
        if done and state == previous:
            break
    return state


def test_requests_and_rules_pages_show_fallbacks_in_chromium(tmp_path):
    if shutil.which("chromium") is None:
        pytest.skip(SKIP_REASON)
    db, rules = fill_database(tmp_path)
    add_fallbacks(db, rules)
    dashboard, url = start_dashboard(tmp_path, db, rules, tmp_path / "streamlit.log")
    states = {}
    try:
        for page in ("requests", "rules"):
            browser = Browser(tmp_path / f"chromium-{page}", tmp_path / f"chromium-{page}.log")
            try:
                states[page] = render(browser, f"{url}/{page}")
                browser.screenshot(tmp_path / f"dashboard-{page}.png")
            finally:
                browser.close()
    finally:
        stop(dashboard)
    if artifacts := os.environ.get("LECTR_ARTIFACTS"):
        for page in states:
            shutil.copy(tmp_path / f"dashboard-{page}.png", Path(artifacts) / f"dashboard-{page}.png")
    print(f"\nscreenshots: {tmp_path}/dashboard-{{requests,rules}}.png")

    requests, rules_page = states["requests"], states["rules"]
    for state in (requests, rules_page):
        assert state and state["table_rows"] and not state["exceptions"], state
    # Newest first: the two suspended skips, then the three fallbacks, each marked in the first column.
    assert [row[0] for row in requests["table_rows"][:5]] == ["⊘", "⊘", "↩", "↩", "↩"], requests["table_rows"][:5]
    assert "Endpoint" in requests["text"]
    suspended = [a for a in rules_page["alerts"] if "is suspended" in a]
    assert len(suspended) == 1 and "Search on nano" in suspended[0] and "404 model_not_found" in suspended[0]
    assert any("gpt-5-nanno: unknown model: check the spelling" in a for a in rules_page["alerts"])
    row = next(row for row in rules_page["table_rows"] if "Search on nano" in row)
    assert "⊘ suspended" in row and "⚠ gpt-5-nanno" in row, row
