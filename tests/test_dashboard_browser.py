"""End to end in a real browser: the demo fills a database through the real proxy, `streamlit run`
serves the dashboard on it, and headless Chromium (Debian's `chromium` package) renders every page
at 1,400 px wide, the width issue 15 asks the dashboard to read well at.

One database, one dashboard and one browser serve every test of this module (the demo traffic takes
most of the time). Each test opens its page, waits until the page shows its data, saves a screenshot
of the whole page (under pytest's tmp_path, and copied to $LECTR_ARTIFACTS when that is set), and
checks what a reader must see there: the figures against the database, dates on a week's axis, every
column of a table on screen and no cell cut short.

Why not `chromium --dump-dom` / `--screenshot`: Streamlit sends the page over a websocket after the
HTML has loaded, and those flags capture the page at load plus a `--virtual-time-budget`. Virtual
time runs ahead of the real time the app takes to run the script, so whether the data is in the
capture depends on the machine's speed. Instead the tests drive Chromium over the DevTools protocol
(`--remote-debugging-pipe`: JSON messages on file descriptors 3 and 4, no port, no extra package),
wait for the rendered page itself, and click and type as a user does.
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import httpx
import pytest

from lectr.admin import rulesfile
from lectr.proxy import rulehealth
from lectr.store import open_store, utc_now

from helpers import ROOT, free_port, stop, wait_until

sys.path.insert(0, str(ROOT / "dashboard"))
import common  # noqa: E402  (dashboard/common.py: the request log's column sizing rule)

pytestmark = pytest.mark.slow  # starts Streamlit and Chromium

SKIP_REASON = "Chromium is not installed (bash scripts/setup.sh test installs Debian's chromium package as root)"
WIDTH, HEIGHT = 1400, 1000  # the window; a screenshot grows the viewport to the page's whole height
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
METRICS = ("Requests", "Cost", "Tokens", "Error rate", "Routing coverage", "Failed auth")
TIME_SERIES = ("Requests", "Cost", "Tokens", "Error rate", "Latency", "Time to first byte")
NO_ORG = "(no org)"
NO_RULE = "passed through (no rule)"
UNCHANGED = " (matched, changed nothing)"
UNTAGGED = "(untagged)"
# The request log's columns the page sizes with common.fit, by header.
FITTED = ("feature", "task", "model", "status", "tokens in / out", "cost")

# What the page shows, read from the rendered DOM. Streamlit marks its elements with data-testid and
# says on the app's root whether the script is still running.
PAGE_STATE = """(() => {
  const all = (selector, root = document) => [...root.querySelectorAll(selector)];
  const text = (el) => (el ? el.innerText.trim() : null);
  const app = document.querySelector('[data-testid="stApp"]');
  const main = document.querySelector('[data-testid="stMain"]') || document;
  const charts = all('[data-testid="stVegaLiteChart"]', main);
  return {
    script: app ? app.dataset.testScriptState : null,
    connection: app ? app.dataset.testConnectionState : null,
    stale: all('[data-stale="true"]', main).length,  // elements of the previous run not replaced yet
    title: text(main.querySelector("h1")),
    headings: all("h2, h3", main).map(text),
    captions: all('[data-testid="stCaptionContainer"]', main).map(text),
    metrics: all('[data-testid="stMetric"]', main).map((m) => [
      text(m.querySelector('[data-testid="stMetricLabel"]')),
      text(m.querySelector('[data-testid="stMetricValue"]')),
      text(m.querySelector('[data-testid="stMetricDelta"]')),
    ]),
    charts: charts.length,
    charts_drawn: charts.filter((c) => c.querySelector("canvas, svg.marks")).length,
    chart_sizes: charts.map((c) => c.querySelector("svg.marks")?.getAttribute("viewBox")),  // redrawn to fit
    // st.dataframe draws on a canvas; it also keeps an accessible table of the rows it has drawn. Its
    // text is the cell's as shown for text columns, the raw value for numbers and dates.
    grids: all('[data-testid="stDataFrame"]', main).map((frame) => {
      const table = frame.querySelector('table[role="grid"]');
      return {
        headers: all('th[role="columnheader"]', frame).map((th) => th.textContent.trim()),
        rows: all("tbody tr", frame).map((tr) => [...tr.children].map((td) => td.textContent.trim())),
        row_count: table ? Number(table.getAttribute("aria-rowcount")) - 1 : null,
      };
    }),
    // st.table: plain HTML, header row first.
    tables: all('[data-testid="stTable"]', main).map((t) =>
      all("tr", t).map((tr) => all("th, td", tr).map((cell) => cell.textContent.trim()))
    ),
    json: all('[data-testid="stJson"]', main).length,
    alerts: all('[data-testid="stAlert"]', main).map(text),
    exceptions: all('[data-testid="stException"]', main).map(text),
    text: document.body ? document.body.innerText : "",
  };
})()"""

# How each st.dataframe is laid out, measured in the page. Glide Data Grid draws the cells on a canvas
# with the font and padding of its theme, which Streamlit hands it as CSS variables (--gdg-*); the
# column and row edges are the lines the grid draws, read back from the canvas along its top row and
# its left edge, where nothing but those lines differs from the background. For each column: its
# width, and the width of its header and of its widest cell in the grid's own font (cells whose
# accessible text is a raw number or timestamp are left out: the grid draws those formatted). Cells
# whose accessible text is empty but whose canvas area is not: a missing value the grid draws as
# "None" (the accessible table leaves it empty).
GRID_LAYOUT = """(async () => {
  const RAW = /^(-?\\d+(\\.\\d+)?(e[-+]?\\d+)?|\\d{4}-\\d{2}-\\d{2}( \\d{2}:\\d{2}(:\\d{2}(\\.\\d+)?)?)?|true|false)$/i;
  const grids = [];
  for (const frame of document.querySelectorAll('[data-testid="stMain"] [data-testid="stDataFrame"]')) {
    const scroller = frame.querySelector(".dvn-scroller");
    const canvas = frame.querySelector('canvas[data-testid="data-grid-canvas"]');
    const css = getComputedStyle(scroller);
    const variable = (name) => css.getPropertyValue(name).trim();
    const family = variable("--gdg-font-family");
    const cellFont = `${variable("--gdg-base-font-style")} ${family}`;
    const headerFont = `${variable("--gdg-header-font-style")} ${family}`;
    await document.fonts.load(cellFont);
    await document.fonts.load(headerFont);
    const headers = [...frame.querySelectorAll('th[role="columnheader"]')].map((th) => th.textContent.trim());
    const rows = [...frame.querySelectorAll("tbody tr")]
      .map((tr) => [...tr.children].map((td) => td.textContent.trim()));
    const first = frame.querySelector('td[data-testid^="glide-cell-"]');
    const markers = first ? Number(first.dataset.testid.split("-")[2]) : 0;  // the row-selection column, drawn first

    const scale = canvas.width / canvas.clientWidth;
    const image = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
    const pixel = (x, y) => image.data.slice(4 * (y * canvas.width + x), 4 * (y * canvas.width + x) + 4).join();
    const edges = (length, at) => {  // where a line ends: runs of pixels unlike the commonest one
      const values = Array.from({ length }, (_, i) => at(i));
      const counts = new Map();
      values.forEach((v) => counts.set(v, (counts.get(v) || 0) + 1));
      const background = [...counts].sort((a, b) => b[1] - a[1])[0][0];
      const found = [];
      values.forEach((v, i) => { if (v !== background && values[i + 1] === background) found.push(i); });
      return found;
    };
    const columnEdges = edges(canvas.width, (x) => pixel(x, 1));
    const rowEdges = edges(canvas.height, (y) => pixel(1, y));
    const drawn = headers.length + markers;
    if (columnEdges.length === drawn - 1) columnEdges.push(canvas.width);  // the last column reaches the edge
    const columnsFound = columnEdges.length === drawn;
    const bounds = columnsFound ? [0, ...columnEdges].map((x, i, xs) => [x, xs[i + 1]]).slice(markers, drawn) : [];
    rowEdges.push(canvas.height);

    const measure = document.createElement("canvas").getContext("2d");
    const width = (text, font) => { measure.font = font; return measure.measureText(text).width; };
    const columns = headers.map((header, c) => {
      let widest = "";
      let widestPx = 0;
      for (const row of rows) {
        const text = row[c] || "";
        if (RAW.test(text)) continue;
        const px = width(text, cellFont);
        if (px > widestPx) [widest, widestPx] = [text, px];
      }
      return {
        header,
        width: bounds[c] ? (bounds[c][1] - bounds[c][0]) / scale : null,
        header_px: width(header, headerFont),
        widest,
        widest_px: widestPx,
      };
    });
    const placeholders = [];
    rows.forEach((row, r) => {
      if (!columnsFound || r + 1 >= rowEdges.length) return;
      const [top, bottom] = [rowEdges[r] + 2, rowEdges[r + 1] - 2];
      row.forEach((text, c) => {
        if (text) return;
        const [left, right] = [bounds[c][0] + 2, bounds[c][1] - 2];
        const background = pixel(left, top);
        for (let y = top; y < bottom; y++)
          for (let x = left; x < right; x++)
            if (pixel(x, y) !== background) { placeholders.push([r, headers[c]]); return; }
      });
    });
    grids.push({
      headers,
      columns,
      columns_found: columnsFound,
      placeholders,
      padding: parseFloat(variable("--gdg-cell-horizontal-padding")),
      font: cellFont,
      font_loaded: document.fonts.check(cellFont),
      scroll: {
        width: scroller.scrollWidth, client_width: scroller.clientWidth,
        height: scroller.scrollHeight, client_height: scroller.clientHeight,
      },
      right: frame.getBoundingClientRect().right,
    });
  }
  return grids;
})()"""

# The axes of each chart, as drawn: Streamlit embeds Vega-Lite with Vega's SVG renderer (it switches to
# canvas only above 2,000 data points per datum), so the tick labels are SVG text in the page, and the
# rendered chart is read rather than its spec. For each chart in view: its title, the visible labels
# of each axis (Vega draws a label that would overlap its neighbour with opacity 0; one longer than its
# limit it cuts to end in "…"), and which of them is the time axis (Vega's aria-label: "X-axis for a
# time scale ...").
CHART_AXES = """(() => [...document.querySelectorAll('[data-testid="stMain"] [data-testid="stVegaLiteChart"]')]
  .filter((chart) => !chart.closest("[inert], details:not([open])"))  // not in a closed expander
  .map((chart) => {
    const svg = chart.querySelector("svg.marks");
    const title = svg && svg.querySelector(".role-title-text text");
    const axes = svg ? [...svg.querySelectorAll("g.role-axis")] : [];
    const labels = (axis) => [...axis.querySelectorAll(".role-axis-label text")]
      .filter((t) => Number(getComputedStyle(t).opacity) > 0 && t.getAttribute("opacity") !== "0")
      .map((t) => t.textContent);
    const time = axes.find((g) => (g.getAttribute("aria-label") || "").startsWith("X-axis for a time scale"));
    return {
      renderer: svg ? "svg" : "canvas",
      title: title ? title.textContent : null,
      time: time ? labels(time) : null,
      labels: axes.flatMap(labels),
    };
  }))()"""

# The centre of an element on screen, scrolled into view first, for a click; null if it is not there.
CENTRE = """((element) => {
  if (!element) return null;
  element.scrollIntoView({ block: "center" });
  const r = element.getBoundingClientRect();
  return [r.x + r.width / 2, r.y + r.height / 2];
})"""
# A widget by its accessible name (Streamlit gives an input its label's text as aria-label).
NAMED = """document.querySelector('[aria-label=%s]')"""


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
        """Load `url` in the tab (a new Streamlit session: the page's choices start from their defaults)."""
        if self.session is None:
            target = self.send("Target.createTarget", url="about:blank")["targetId"]
            self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.evaluate("window.leaving = true")
        self.send("Page.navigate", url=url)
        wait_until(lambda: self.evaluate("!window.leaving"), timeout=15, what=f"the browser to load {url}")

    def evaluate(self, expression: str, timeout: float = 15):
        result = self.send("Runtime.evaluate", timeout, expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def click(self, point: list[float]) -> None:
        x, y = point
        self.send("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)
        # Away again: a pointer left over a table would draw its row highlighted.
        self.send("Input.dispatchMouseEvent", type="mouseMoved", x=0, y=0)

    def type(self, text: str) -> None:
        """Type into the focused field and press Enter (Streamlit takes a text input's value on Enter)."""
        self.send("Input.insertText", text=text)
        enter = dict(key="Enter", code="Enter", windowsVirtualKeyCode=13)
        self.send("Input.dispatchKeyEvent", type="keyDown", text="\r", **enter)
        self.send("Input.dispatchKeyEvent", type="keyUp", **enter)

    def screenshot(self, path: Path) -> None:
        """The whole page: the app scrolls inside its main element, so the viewport grows to its height."""
        height = self.evaluate("document.querySelector('[data-testid=\"stMain\"]')?.scrollHeight || 0")
        self.send("Emulation.setDeviceMetricsOverride", width=WIDTH, height=max(HEIGHT, height),
                  deviceScaleFactor=1, mobile=False)  # fmt: skip
        try:
            self.evaluate("new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")
            shot = self.send("Page.captureScreenshot", timeout=30, format="png")
            path.write_bytes(base64.b64decode(shot["data"]))
        finally:
            self.send("Emulation.clearDeviceMetricsOverride")

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
    args = [
        "--db", str(db), "--rules", str(rules), "--requests", "200", "--spike", "40", "--history-days", "2",
        "--no-dashboard",
    ]  # fmt: skip
    demo = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py"), *args],
        cwd=workdir, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert demo.returncode == 0, f"scripts/demo.py failed:\n{demo.stdout}\n{demo.stderr}"
    return db, rules


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
                prompt_tokens=1830, completion_tokens=212, cost_usd=0.006695, price_source="bundled",
                latency_ms=640.0, ttfb_ms=410.0)  # fmt: skip
    fallback = dict(fallback_model="gpt-5-nanno", fallback_status=404, fallback_error=NOT_FOUND, fallback_ms=212.0)
    suspended = dict(route_skip_reason=f"{rulehealth.SUSPENDED}rule 'search-on-nano' failed 3 times in a row")
    base |= dict.fromkeys([*fallback, *suspended])  # every row has every column
    open_store(db).append_request_logs(
        [
            base | dict(ts=latest + timedelta(seconds=s), request_id=f"search-{s}") | (suspended if s > 3 else fallback)
            for s in range(1, 6)
        ],
    )
    open_store(db).aggregate()
    rules.write_text(rules.read_text() + SEARCH_RULE)


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


@dataclass
class Dashboard:
    url: str
    db: Path
    rules: Path
    browser: Browser

    def show(self, path: str, ready: Callable[[dict], bool], timeout: float = 45) -> dict:
        """Open the page at `path` and return its state once it is ready (see `settle`)."""
        started = time.monotonic()
        self.browser.open(self.url + path)
        state = settle(self.browser, ready, timeout)
        print(f"\n{path} rendered in {time.monotonic() - started:.1f}s")
        return state

    def query(self, sql: str, *params) -> list[tuple]:
        with duckdb.connect(str(self.db), read_only=True) as con:
            return con.execute(sql, list(params)).fetchall()


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory) -> Iterator[Dashboard]:
    """The demo's database with a failing rule's fallbacks on top, a dashboard on it, and a browser."""
    if shutil.which("chromium") is None:
        pytest.skip(SKIP_REASON)
    workdir = tmp_path_factory.mktemp("dashboard")
    started = time.monotonic()
    db, rules = fill_database(workdir)
    add_fallbacks(db, rules)
    filled = time.monotonic()
    proc, url = start_dashboard(workdir, db, rules, workdir / "streamlit.log")
    print(f"\ndemo traffic {filled - started:.1f}s, streamlit start {time.monotonic() - filled:.1f}s ({workdir})")
    try:
        browser = Browser(workdir / "chromium-profile", workdir / "chromium.log")
        try:
            yield Dashboard(url, db, rules, browser)
        finally:
            browser.close()
    finally:
        stop(proc)


def settle(browser: Browser, ready: Callable[[dict], bool], timeout: float = 45) -> dict:
    """The page's state once the script has finished, every element of this run is in, every chart is
    drawn and `ready` holds (or an exception shows), and a poll later nothing has changed."""
    state = previous = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.25)
        previous, state = state, browser.evaluate(PAGE_STATE)
        done = (
            state["script"] == "notRunning"
            and not state["stale"]
            and state["charts_drawn"] == state["charts"]
            and all(grid["headers"] for grid in state["grids"])  # its accessible table is in
            and (state["exceptions"] or ready(state))
        )
        if done and state == previous:
            break
    return state


def keep(browser: Browser, path: Path) -> Path:
    """A screenshot of the page and its DOM, next to the test's other files and in $LECTR_ARTIFACTS."""
    browser.screenshot(path)
    path.with_suffix(".html").write_text(browser.evaluate("document.documentElement.outerHTML") or "")
    if artifacts := os.environ.get("LECTR_ARTIFACTS"):
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(artifacts) / path.name)
    print(f"\nscreenshot: {path}")
    return path


def brief(state: dict | None) -> dict:
    """The state without the page's whole text, for an assertion's message."""
    return {k: v for k, v in (state or {}).items() if k != "text"}


def assert_page_shown(state: dict, title: str) -> None:
    __tracebackhide__ = True
    page = brief(state)
    assert state["script"] == "notRunning" and not state["stale"], f"the page did not finish rendering: {page}"
    assert not state["exceptions"], f"the page shows an exception: {state['exceptions']}"
    assert "Traceback" not in state["text"], state["text"]
    assert state["connection"] == "CONNECTED", page
    assert state["title"] == title, page


def assert_reads_well(grids: Sequence[dict] = (), axes: Sequence[dict] = ()) -> None:
    """Every table and chart at 1,400 px: a table's columns all on screen, no cell or header cut short,
    no missing value shown as "None"; no chart's axis label cut short ("llama-3.3-70b-ver…"). All that
    is wrong on the page in one message."""
    __tracebackhide__ = True
    wrong = []
    for grid in grids:
        name, scroll = grid["headers"], grid["scroll"]
        if scroll["width"] > scroll["client_width"] or grid["right"] > WIDTH:
            wrong.append(
                f"{name}: columns off-screen (the table scrolls {scroll['width']} px in {scroll['client_width']} px)"
            )
        if not grid["font_loaded"]:
            wrong.append(f"{name}: the grid's font {grid['font']} did not load")
        if not grid["columns_found"]:
            wrong.append(f"{name}: its column edges were not found on its canvas")
        # The grid draws a cell's text from its padding on and clips it at the column's edge.
        wrong += [
            f"{name}: {c['header']!r} is {c['width']:.0f} px, {text!r} needs {need + grid['padding']:.0f} px"
            for c in grid["columns"]
            for text, need in ((c["header"], c["header_px"]), (c["widest"], c["widest_px"]))
            if text and need + grid["padding"] > c["width"] + 0.5
        ]
        if grid["placeholders"]:
            wrong.append(f"{name}: missing values shown as 'None' at (row, column) {grid['placeholders']}")
    wrong += [
        f"chart {axis['title']!r}: label {label!r} cut short"
        for axis in axes
        for label in axis["labels"]
        if label.endswith("…")
    ]
    assert not wrong, "at 1,400 px:\n" + "\n".join(wrong)


def table(state: dict, *headers: str) -> dict:
    """The grid whose columns start with these headers."""
    found = [g for g in state["grids"] if g["headers"][: len(headers)] == list(headers)]
    assert len(found) == 1, (headers, [g["headers"] for g in state["grids"]])
    return found[0]


def rows_by(grid: dict, key: str) -> dict[str, dict[str, str]]:
    """A grid's rows as {key column's text: {header: text}}, checking that every row was read."""
    assert len(grid["rows"]) == grid["row_count"], f"{grid['headers']}: {len(grid['rows'])} of {grid['row_count']}"
    return {row[grid["headers"].index(key)]: dict(zip(grid["headers"], row)) for row in grid["rows"]}


def since(now: datetime, span: timedelta) -> datetime:
    """The dashboard's window start over hourly buckets: the whole hour `span` before now."""
    return (now - span).replace(minute=0, second=0, microsecond=0)


def window_shown(state: dict, span: timedelta, before: datetime, after: datetime) -> datetime:
    """The window's start as the page's caption gives it ("since Dec 03 18:00 UTC"), checked to be
    the whole hour `span` before now as the page ran (now: between `before` and `after`)."""
    found = [m for caption in state["captions"] for m in re.findall(r"since (\w{3} \d{2} \d{2}:\d{2}) UTC", caption)]
    assert found, state["captions"]
    candidates = {f"{since(t, span):%b %d %H:%M}": since(t, span) for t in (before, after)}
    assert found[0] in candidates, (found[0], list(candidates))
    return candidates[found[0]]


def requests_in_window(dashboard: Dashboard, state: dict, span: timedelta, before: datetime, after: datetime) -> int:
    """The requests stored in the window the page's caption names (see window_shown)."""
    start = window_shown(state, span, before, after)
    [(requests,)] = dashboard.query("SELECT count(*) FROM request_logs WHERE ts >= ?", start)
    return requests


def number(text: str) -> float:
    return float(text.replace(",", "").replace("$", "").removesuffix("%"))


def compact(text: str) -> float:
    """2.78 M -> 2,780,000"""
    value, _, unit = text.partition(" ")
    return number(value) * {"": 1, "k": 1e3, "M": 1e6, "B": 1e9}[unit]


def test_overview_in_chromium(dashboard, tmp_path):
    before = utc_now()
    state = dashboard.show("/", lambda s: len(s["metrics"]) == len(METRICS) and len(s["grids"]) >= 4)
    after = utc_now()
    grids = dashboard.browser.evaluate(GRID_LAYOUT)
    axes = dashboard.browser.evaluate(CHART_AXES)
    keep(dashboard.browser, tmp_path / "dashboard-overview.png")

    assert_page_shown(state, "Overview · all orgs")
    assert not state["alerts"], f"the page shows warnings or errors: {state['alerts']}"
    page = brief(state)
    metrics = {label: (value, delta) for label, value, delta in state["metrics"]}
    assert list(metrics) == list(METRICS), page

    # The headline against the database, over the window the caption names.
    start = window_shown(state, timedelta(hours=24), before, after)
    [(requests, failed_auth, authenticated, errors, routed, cost, tokens)] = dashboard.query(
        """SELECT count(*), count(*) FILTER (WHERE org_id IS NULL AND status_code IN (401, 429)), count(org_id),
                  count(error_category),
                  count(*) FILTER (WHERE routed), coalesce(sum(cost_usd), 0),
                  coalesce(sum(prompt_tokens), 0) + coalesce(sum(completion_tokens), 0)
           FROM request_logs WHERE ts >= ?""",
        start,
    )
    # The changes compare the window's whole hours (not the one under way) with the 24 hours before.
    [(requests_before, requests_whole)] = dashboard.query(
        "SELECT count(*) FILTER (WHERE ts < ?), count(*) FILTER (WHERE ts >= ? AND ts < ?) FROM request_logs "
        "WHERE ts >= ?",
        start, start, since(after, timedelta(0)), start - timedelta(hours=24),
    )  # fmt: skip
    assert failed_auth > 0 and requests_before > 0, "the demo sends wrong keys and copies its traffic back"
    assert metrics["Requests"][0] == f"{requests:,}", (metrics, requests)
    requests_change = 100 * (requests_whole - requests_before) / requests_before
    assert metrics["Requests"][1] == (f"{requests_change:+.0f}%" if round(requests_change) else None), metrics
    assert metrics["Failed auth"][0] == f"{failed_auth:,}", (metrics, failed_auth)
    assert abs(number(metrics["Cost"][0]) - cost) < 0.006, (metrics, cost)
    assert re.fullmatch(r"\d+(\.\d+)? [kMB]", metrics["Tokens"][0]), metrics  # compact: "2.78 M"
    assert math.isclose(compact(metrics["Tokens"][0]), tokens, rel_tol=0.005), (metrics, tokens)
    assert metrics["Error rate"][0] == f"{100 * errors / requests:.1f}%", (metrics, errors, requests)
    assert metrics["Routing coverage"][0] == f"{100 * routed / authenticated:.1f}%", (metrics, routed, authenticated)
    for label, (_, delta) in metrics.items():  # every figure against the 24 h before
        # (none only where the change rounds to nothing: "+0%" would show an arrow for no change)
        zero = delta and re.fullmatch(r"[+-]0(\.0)?( pts|%)", delta)
        shown = not delta or re.fullmatch(r"[+-]\d+(%|\.\d pts)", delta) and not zero
        assert shown, (label, delta)

    # Six time series over 24 hours, their x axes in hours ("%H:%M").
    series = [a for a in axes if a["title"] in TIME_SERIES]
    assert sorted(a["title"] for a in series) == sorted(TIME_SERIES), axes
    for axis in series:
        assert axis["time"] and all(re.fullmatch(r"\d{2}:\d{2}", t) for t in axis["time"]), axis

    # By org: every org and the requests refused for want of a key, adding up to the headline.
    by_org = rows_by(table(state, "org", "requests"), "org")
    counted = dict(dashboard.query("SELECT coalesce(org_id, ?), count(*) FROM request_logs WHERE ts >= ? GROUP BY 1",
                                   NO_ORG, start))  # fmt: skip
    assert {org: int(number(row["requests"])) for org, row in by_org.items()} == counted, by_org
    assert by_org[NO_ORG]["cost"] == "$0.00", by_org[NO_ORG]
    for headers in (("status", "requests"), ("model", "requests")):  # requests by status, latency by model
        assert table(state, *headers)["rows"], headers

    # Routing coverage: a row per rule, its matches that changed nothing, and the traffic no rule
    # matched; together the requests Lectr let in, and the routed ones the headline's coverage.
    coverage = {rule: int(number(row["requests"])) for rule, row in rows_by(table(state, "rule"), "rule").items()}
    assert NO_RULE in coverage and len(coverage) > 2, coverage
    assert sum(coverage.values()) == authenticated, (coverage, authenticated)
    assert sum(n for rule, n in coverage.items() if rule != NO_RULE and not rule.endswith(UNCHANGED)) == routed

    assert_reads_well(grids, axes)


def test_overview_shows_dates_on_a_7_day_axis(dashboard, tmp_path):
    state = dashboard.show("/", lambda s: len(s["metrics"]) == len(METRICS))
    assert_page_shown(state, "Overview · all orgs")
    # As a user does: open the Period select and click the option. Streamlit 1.67's select box is a
    # react-aria combo box; its ARIA roles (combobox, its button that opens the listbox, option) are
    # what a screen reader uses too, so they outlast the widget library behind them.
    browser = dashboard.browser
    before = utc_now()
    period = NAMED % json.dumps("Period")
    opener = f"({period}?.parentElement.querySelector('[aria-haspopup=\"listbox\"]') || {period})"
    browser.click(browser.evaluate(f"{CENTRE}({opener})"))
    option = f"""{CENTRE}([...document.querySelectorAll('[role="option"]')]
                         .find((o) => o.innerText.trim() === "Last 7 days"))"""
    wait_until(lambda: browser.evaluate(option), timeout=10, what="the Period select's options")
    browser.click(browser.evaluate(option))
    state = settle(browser, lambda s: any("last 7 days" in c for c in s["captions"]))
    after = utc_now()
    axes = browser.evaluate(CHART_AXES)
    keep(browser, tmp_path / "dashboard-overview-7-days.png")

    assert_page_shown(state, "Overview · all orgs")
    requests = requests_in_window(dashboard, state, timedelta(days=7), before, after)
    assert dict((label, value) for label, value, _ in state["metrics"])["Requests"] == f"{requests:,}", state["metrics"]
    # A date at each midnight, not Vega's own choice over days ("12 PM" at every tick).
    series = [a for a in axes if a["title"] in TIME_SERIES]
    assert sorted(a["title"] for a in series) == sorted(TIME_SERIES), axes
    for axis in series:
        assert axis["renderer"] == "svg", f"{axis['title']}: drawn on a canvas, its labels are not in the page"
        labels = axis["time"]
        assert labels and len(labels) >= 2, axis  # two days of history: at least two midnights
        assert all(re.fullmatch(r"[A-Z][a-z]{2} \d{2}", t) for t in labels), axis
        assert len(set(labels)) == len(labels), axis  # one tick per day
    assert_reads_well(axes=series)


def test_requests_page_in_chromium(dashboard, tmp_path):
    browser = dashboard.browser
    before = utc_now()
    state = dashboard.show("/requests", lambda s: any("time (UTC)" in g["headers"] for g in s["grids"]))
    after = utc_now()
    grids = browser.evaluate(GRID_LAYOUT)
    keep(browser, tmp_path / "dashboard-requests.png")
    assert_page_shown(state, "Requests · all orgs")

    start = window_shown(state, timedelta(hours=24), before, after)
    [(requests,)] = dashboard.query("SELECT count(*) FROM request_logs WHERE ts >= ?", start)
    assert re.match(rf"{requests:,} requests match in the last 24 hours: since ", state["captions"][0]), (
        state["captions"],
        requests,
    )
    log = check_request_log(state, grids)

    # Page 2 (the first is the demo's closing cost spike, which no rule routes): routed requests.
    browser.click(browser.evaluate(f"{CENTRE}(document.querySelector('[data-testid=\"stNumberInputStepUp\"]'))"))
    state = settle(browser, lambda s: any(" · page 2 of " in c for c in s["captions"]))
    grids = browser.evaluate(GRID_LAYOUT)
    keep(browser, tmp_path / "dashboard-requests-page-2.png")
    assert_page_shown(state, "Requests · all orgs")
    log += check_request_log(state, grids)

    routes = [row["⇄"] for row in log]
    assert "⇄" in routes, routes  # a rule changed the model
    assert {"↩", "⊘"} <= set(routes), routes  # the failing rule's fallbacks and skips, first on page 1
    for row in log:  # requested → what answered, marked as routed
        assert ("→" in row["model"]) <= (row["⇄"] == "⇄"), row
    assert any(UNTAGGED in (row["feature"], row["task"]) for row in log), "the demo sends untagged traffic"

    # A request id opens everything Lectr stored about the request, in sections.
    [(request_id, model_asked, model_answered)] = dashboard.query(
        "SELECT request_id, model_requested, model_actual FROM request_logs WHERE routed AND ts >= ? "
        "ORDER BY ts DESC LIMIT 1",
        start,
    )
    browser.click(browser.evaluate(f"{CENTRE}({NAMED % json.dumps('Request id')})"))
    browser.type(request_id)
    state = settle(browser, lambda s: f"Request {request_id}" in s["headings"] and len(s["tables"]) >= 4)
    keep(browser, tmp_path / "dashboard-request-detail.png")
    assert_page_shown(state, "Requests · all orgs")
    assert f"Request {request_id}" in state["headings"], brief(state)
    fields = {row[0]: row[1] for t in state["tables"] for row in t[1:]}
    assert fields["model requested"] == model_asked and fields["model that answered"] == model_answered, fields
    assert fields["rule changed the request"] == "yes", fields
    assert fields["cost"].startswith("$") and fields["cost"] != "$0.0000", fields
    assert "None" not in fields.values(), fields
    for section in ("Request", "Routing", "Tokens and cost", "Timing"):
        assert section in state["text"], section


def check_request_log(state: dict, grids: list[dict]) -> list[dict[str, str]]:
    """The request log at 1,400 px: its 50 rows whole, no column off-screen, no value cut short."""
    __tracebackhide__ = True
    log = table(state, "⇄", "time (UTC)")
    headers = ["⇄", "time (UTC)", "org", *FITTED, "latency ms"]
    assert log["headers"] == headers, log["headers"]
    assert log["row_count"] == len(log["rows"]) == 50, (log["row_count"], len(log["rows"]))
    [layout] = [g for g in grids if g["headers"] == headers]
    # height="content": the page scrolls, not a box inside it.
    assert layout["scroll"]["height"] <= layout["scroll"]["client_height"], layout["scroll"]
    assert_reads_well([layout])
    # The page sizes these columns with common.fit (a guess of 7.5 px a character): the width it asks
    # for must hold the longest value, with the padding on both sides, in the font the grid really
    # draws with. The grid may grow a column beyond that to fill the page's width (checked just above
    # against the drawn edges), so this checks the sizing rule itself, which must hold where nothing
    # is left over to grow into.
    columns = {c["header"]: c for c in layout["columns"]}
    for header in FITTED:
        values = [row[headers.index(header)] for row in log["rows"]]
        asked = common.fit(values, header)
        column = columns[header]
        need = max(column["widest_px"], column["header_px"]) + 2 * layout["padding"]
        assert need <= asked, f"common.fit gives {header!r} {asked} px; {column['widest']!r} needs {need:.0f} px"
    rows = [dict(zip(headers, row)) for row in log["rows"]]
    for row in rows:
        assert "None" not in row.values() and "nan" not in row.values(), row
        assert row["cost"] != "$0.0000", row
        assert row["⇄"] in ("", "⇄", "↩", "⊘"), row
        assert re.fullmatch(r"(\d{3}( [a-zA-Z ]+)?|[a-zA-Z ]+|–)", row["status"]), row  # "429 rate limited"
    return rows


def test_rules_page_in_chromium(dashboard, tmp_path):
    state = dashboard.show("/rules", lambda s: bool(s["grids"]))
    grids = dashboard.browser.evaluate(GRID_LAYOUT)
    keep(dashboard.browser, tmp_path / "dashboard-rules.png")
    assert_page_shown(state, "Rules")
    assert_reads_well(grids)  # first: the accessible table leaves out the columns scrolled off
    rules = table(state, "#", "on", "name")
    assert set(rules["headers"]) == {"#", "on", "name", "when", "target", "health", "24 h", "fallbacks"}, rules
    names = [r["name"] for r in sorted(rulesfile.read(dashboard.rules).rules, key=lambda r: r.get("priority", 0))]
    assert [row[2] for row in rules["rows"]] == names, rules["rows"]  # in priority order
    for row in rules["rows"]:
        assert "None" not in row and "nan" not in row, row
    assert {"Change a rule", "Add a rule"} <= set(state["headings"]), state["headings"]


def test_recommendations_page_in_chromium(dashboard, tmp_path):
    browser = dashboard.browser
    state = dashboard.show("/recommendations", lambda s: len(s["metrics"]) >= 3)
    assert_page_shown(state, "Recommendations · all orgs")
    # Open the first recommendation's evidence, as a reader does, for the screenshot.
    browser.click(browser.evaluate(f"{CENTRE}(document.querySelector('[data-testid=\"stExpander\"] summary'))"))
    state = settle(browser, lambda s: True)
    evidence_shown = browser.evaluate(
        'document.querySelector(\'[data-testid="stExpander"] [data-testid="stTable"]\')?.offsetHeight || 0'
    )
    axes = browser.evaluate(CHART_AXES)
    keep(browser, tmp_path / "dashboard-recommendations.png")

    assert_page_shown(state, "Recommendations · all orgs")
    [(expected,)] = dashboard.query("SELECT count(*) FROM recommendations")
    levels, savings = state["metrics"][:3], state["metrics"][3:]
    assert [label.split(" · ")[0] for label, _, _ in levels] == [
        "High confidence",
        "Medium confidence",
        "Low confidence",
    ], levels
    for _, value, _ in levels:
        assert re.fullmatch(r"\$[\d,]+\.\d+ / month", value), levels
    assert expected > 0 and len(savings) == expected, (savings, expected)
    for label, value, _ in savings:
        assert label == "saving / month" and re.fullmatch(r"\$[\d,]+\.\d+", value), savings
    # The evidence reads as a table of fields in words, not as JSON.
    assert state["json"] == 0, "the evidence is shown as JSON"
    assert len(state["tables"]) == expected and evidence_shown > 0, (len(state["tables"]), evidence_shown)
    for evidence in state["tables"]:
        assert evidence[0] == ["evidence", "value"], evidence
        cells = [cell for row in evidence[1:] for cell in row]
        assert "requests observed" in cells, evidence
        assert not any(c in cell for cell in cells for c in "{}[]") and "None" not in cells, evidence
    assert axes, "the open evidence shows its cost chart"
    assert_reads_well(axes=axes)


def test_anomalies_page_in_chromium(dashboard, tmp_path):
    state = dashboard.show("/anomalies", lambda s: bool(s["grids"]) or bool(s["alerts"]))
    grids = dashboard.browser.evaluate(GRID_LAYOUT)
    keep(dashboard.browser, tmp_path / "dashboard-anomalies.png")
    assert_page_shown(state, "Anomalies · all orgs")
    [(open_now,)] = dashboard.query("SELECT count(*) FROM anomalies WHERE status = 'open'")
    metrics = {label: value for label, value, _ in state["metrics"]}
    assert open_now > 0 and metrics["Open"] == str(open_now), (metrics, open_now)  # the demo's closing spike
    anomalies = table(state, "org", "severity")
    found = [dict(zip(anomalies["headers"], row)) for row in anomalies["rows"]]
    costs = [a for a in found if a["metric"] == "cost"]
    assert costs, found
    for anomaly in costs:  # dollars, in the page's own format
        for column in ("last hour", "usual hour"):
            assert re.fullmatch(r"\$[\d,]+\.\d+", anomaly[column]), anomaly
    assert_reads_well(grids)


def test_requests_and_rules_pages_show_fallbacks_in_chromium(dashboard, tmp_path):
    requests = dashboard.show("/requests", lambda s: any("time (UTC)" in g["headers"] for g in s["grids"]))
    keep(dashboard.browser, tmp_path / "dashboard-requests-fallbacks.png")
    rules_page = dashboard.show("/rules", lambda s: bool(s["grids"]))
    keep(dashboard.browser, tmp_path / "dashboard-rules-fallbacks.png")

    assert_page_shown(requests, "Requests · all orgs")
    assert_page_shown(rules_page, "Rules")
    log = table(requests, "⇄", "time (UTC)")["rows"]
    # Newest first: the two suspended skips, then the three fallbacks, each marked in the first column.
    assert [row[0] for row in log[:5]] == ["⊘", "⊘", "↩", "↩", "↩"], log[:5]
    assert "Endpoint" in requests["text"]
    suspended = [a for a in rules_page["alerts"] if "is suspended" in a]
    assert len(suspended) == 1 and "Search on nano" in suspended[0] and "404 model_not_found" in suspended[0]
    assert any("gpt-5-nanno: unknown model: check the spelling" in a for a in rules_page["alerts"])
    row = next(row for row in table(rules_page, "#", "on", "name")["rows"] if "Search on nano" in row)
    assert "⊘ suspended" in row and "⚠ gpt-5-nanno" in row, row
