"""Lectr's dashboard: `streamlit run dashboard/app.py` (database from LECTR_DB or the sidebar).

It reads the database the proxy writes, as a separate process, and writes only the rules
and the shadow experiments: their files (atomically), or with the Rules file setting `db`
their documents in the database. Every proxy reloads them within a second.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `import common` from the pages, under AppTest too

import common  # noqa: E402

from lectr.common.rules import IN_DB  # noqa: E402
from lectr.store import StorageError, is_postgres, open_store  # noqa: E402

st.set_page_config(
    page_title="Lectr", page_icon=":material/alt_route:", layout="wide", initial_sidebar_state="collapsed"
)

SCHEMA_HELP = {
    "missing": "No database at `{db}`. Start the proxy (`bash scripts/run.sh`), or fill one with demo traffic: "
    "`.venv/bin/python scripts/demo.py --db {db}`.",
    "empty": "The database at `{db}` has no Lectr tables yet. Start the proxy once with `--set lectr_db={db}`, "
    "or run `.venv/bin/lectr aggregate --db {db}`.",
    "old": "The database at `{db}` is from an older Lectr version. Upgrade it by starting the proxy once, or with "
    "`.venv/bin/lectr aggregate --db {db}` (the dashboard only reads, so it does not upgrade it itself).",
    "newer": "The database at `{db}` was written by a newer Lectr version than this dashboard. Update this checkout.",
}


@st.fragment(run_every=2)
def wait_for_the_database() -> None:
    """Shown while another process holds the file longer than a moment: retry on our own."""
    try:
        open_store(st.session_state.db).schema_state()
    except StorageError as e:
        if is_postgres(st.session_state.db):
            st.warning(f"PostgreSQL does not answer right now; retrying. ({e})")
        else:
            st.warning(f"The database is busy right now (another process holds it); retrying. ({e})")
        return
    st.rerun(scope="app")


with st.sidebar:  # where the files are: set once, so out of the way (collapsed) until wanted
    st.title("Lectr")
    st.text_input(
        "Database",
        value=common.default_db(),
        key="db",
        # A URL with a password in it is masked: anyone who opens the dashboard sees this box.
        type="password" if common.holds_password(st.session_state.get("db", common.default_db())) else "default",
        help="The DuckDB file or the postgresql:// URL the proxy writes (lectr_db). Keep a PostgreSQL password in "
        "PGPASSWORD or ~/.pgpass rather than in the URL",
    )
    st.text_input(
        "Rules file",
        value=common.default_rules(),
        key="rules",
        help=f"The proxy's rules file (lectr_rules), or {IN_DB}: the rules kept in the database above, which every "
        "proxy on it routes by",
    )
    st.text_input(
        "Experiments file",
        value=os.environ.get("LECTR_EXPERIMENTS", ""),
        key="experiments",
        placeholder="experiments.yaml beside the rules file",
        help=f"The proxy's shadow experiments file (lectr_experiments), or {IN_DB}: those kept in the database; "
        f"empty: experiments.yaml beside the rules file ({IN_DB} with the rules in the database), where the proxy "
        "looks too",
    )
try:
    store = open_store(st.session_state.db)
except StorageError as e:  # not something Lectr can open (a URL): say why, rather than wait for it
    st.error(str(e))
    st.stop()
try:
    state = store.schema_state()
except StorageError:
    state = "busy"
st.session_state.db_state = state
if state == "busy":
    wait_for_the_database()
    st.stop()

pages = [
    st.Page("views/overview.py", title="Overview", icon=":material/monitoring:", default=True),
    st.Page("views/requests.py", title="Requests", icon=":material/list:"),
    st.Page("views/rules.py", title="Rules", icon=":material/alt_route:"),
    st.Page("views/recommendations.py", title="Recommendations", icon=":material/savings:"),
    st.Page("views/anomalies.py", title="Anomalies", icon=":material/warning:"),
]
# Pages along the top and the scope above each page: the page's tables get the window's whole width.
page = st.navigation(pages, position="top")
orgs = common.read(store.dashboard_orgs) if state == "ok" else []
org, period, files = st.columns([2, 2, 5], vertical_alignment="bottom")
org.selectbox(
    "Org",
    [common.ALL_ORGS, *orgs],
    key="org",
    help="All orgs: with the requests refused for want of a valid key",
)
period.selectbox("Period", list(common.PERIODS), key="period", help="every page counts this same window")
# Markdown, not a caption: a page's first caption is its own (the request count, ...).
experiments = st.session_state.experiments or common.default_experiments(st.session_state.rules)
files.markdown(
    f":small[:gray[Database `{store.display}` · rules `{st.session_state.rules}` · experiments "
    f"`{experiments}` · change them in the sidebar (›)]]"
)
# The Rules page works on the rules file alone; rules kept in the database need it as any page does.
if state != "ok" and (page.title != "Rules" or st.session_state.rules == IN_DB):
    st.title(page.title)
    st.info(SCHEMA_HELP.get(state, "").format(db=store.display) or "Reload in a moment.")
    st.stop()
# Which page ran before this one: the request log takes a new snapshot when it is opened afresh.
st.session_state.previous_page, st.session_state.current_page = st.session_state.get("current_page"), page.title
page.run()
