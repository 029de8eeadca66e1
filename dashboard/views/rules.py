"""Rules: the rules file in priority order, with match counts; create, edit, reorder, enable, delete.

Every change is validated as the proxy would validate it, then the file is replaced
atomically; the running proxy applies it to the next request within a second.
"""

from __future__ import annotations

from datetime import timedelta

import common
import pandas as pd
import streamlit as st

from lectr import rulesfile, storage
from lectr.providers import PROVIDERS
from lectr.rules import TASKS, RuleError

ctx = common.context()
st.title("Rules")
st.caption(f"`{ctx.rules}` · first enabled match wins, lowest priority first · saved changes apply within a second")

common.show_flash()

try:
    doc = rulesfile.read(ctx.rules)
except (RuleError, OSError) as e:
    st.error(
        f"The rules file cannot be edited here until it is fixed by hand (the proxy keeps the last good rules "
        f"meanwhile): {e}"
    )
    st.stop()


def match_counts(days: int) -> dict[str, int]:
    """Without a usable database the page still edits the rules file, just without counts."""
    if ctx.db_state != "ok":
        return {}
    try:
        return common.cached("rule_match_counts", ctx.db, ctx.now - timedelta(days=days))
    except storage.StorageError:
        return {}


def describe(mapping: dict | None) -> str:
    return ", ".join(f"{k}={v}" for k, v in (mapping or {}).items()) or "any request"


def save(rules: list[dict], message: str) -> None:
    try:
        ruleset = rulesfile.save(ctx.rules, doc, rules)
    except (RuleError, OSError) as e:
        st.error(f"Not saved: {e}")
        return
    common.clear_cache()
    common.flash([("success", message), *(("warning", w) for w in ruleset.warnings)])


# Form keys carry the file's version: after any saved change the forms show the file afresh
# (a widget keeps its own state while its key stays the same).
version = doc.signature[:8]
ordered = sorted(doc.rules, key=lambda r: r.get("priority", 0))
day, week = match_counts(1), match_counts(7)
if ordered:
    st.dataframe(
        pd.DataFrame(
            {
                "priority": r.get("priority"),
                "enabled": r.get("enabled", True),
                "name": r.get("name"),
                "org": r.get("org") or "every org",
                "conditions": describe(r.get("match")),
                "target": describe(r.get("target")),
                "matches 24 h": day.get(rulesfile.rule_id(r), 0),
                "matches 7 d": week.get(rulesfile.rule_id(r), 0),
                "id": rulesfile.rule_id(r),
            }
            for r in ordered
        ),
        hide_index=True,
        key="rules_table",
    )
else:
    st.info("No rules yet: every request passes through unrouted. Add one below, or turn a recommendation into one.")


def rule_form(key: str, rule: dict, submit: str) -> dict | None:
    """The fields of a rule; returns the edited rule when submitted."""
    match, target = rule.get("match") or {}, rule.get("target") or {}
    providers = ["", *PROVIDERS]
    with st.form(key):
        a, b, c, d = st.columns([3, 1, 1, 2])
        name = a.text_input("Name", rule.get("name", ""), key=f"{key}_name")
        priority = b.number_input("Priority", 1, value=int(rule.get("priority") or 1), step=1, key=f"{key}_priority")
        enabled = c.checkbox("Enabled", rule.get("enabled", True), key=f"{key}_enabled")
        org = d.text_input("Org (blank: every org)", rule.get("org", ""), key=f"{key}_org")
        st.markdown("**When** (blank: any)")
        a, b, c, d = st.columns(4)
        feature = a.text_input("Feature", match.get("feature", ""), key=f"{key}_feature")
        task = b.text_input("Task", match.get("task", ""), key=f"{key}_task", help=", ".join(TASKS))
        provider = c.selectbox(
            "Provider",
            providers,
            providers.index(match.get("provider", "")) if match.get("provider", "") in providers else 0,
            key=f"{key}_provider",
        )
        model = d.text_input("Model", match.get("model", ""), key=f"{key}_model")
        st.markdown("**Then send to** (a model and/or a provider)")
        a, b = st.columns(2)
        target_model = a.text_input("Target model", target.get("model", ""), key=f"{key}_target_model")
        target_provider = b.selectbox(
            "Target provider",
            providers,
            providers.index(target.get("provider", "")) if target.get("provider", "") in providers else 0,
            key=f"{key}_target_provider",
        )
        if not st.form_submit_button(submit, key=f"{key}_submit"):
            return None
    edited = {k: v for k, v in rule.items() if k not in ("name", "priority", "enabled", "org", "match", "target")}
    return {
        **edited,
        "name": name,
        "priority": int(priority),
        "enabled": enabled,
        "org": org,
        "match": {"feature": feature, "task": task, "provider": provider, "model": model},
        "target": {"provider": target_provider, "model": target_model},
    }


if ordered:
    st.subheader("Change a rule")
    ids = [rulesfile.rule_id(r) for r in ordered]
    names = {rulesfile.rule_id(r): f"{r.get('priority')} · {r.get('name')}" for r in ordered}
    rid = st.selectbox("Rule", ids, format_func=names.get, key="rule_selected")
    rule = next(r for r in ordered if rulesfile.rule_id(r) == rid)
    enabled = rule.get("enabled", True)
    up, down, toggle, remove = st.columns(4)
    if up.button("Move up", key="rule_up", disabled=rid == ids[0], width="stretch"):
        save(rulesfile.move(doc.rules, rid, -1), f"Moved '{rule['name']}' up.")
    if down.button("Move down", key="rule_down", disabled=rid == ids[-1], width="stretch"):
        save(rulesfile.move(doc.rules, rid, +1), f"Moved '{rule['name']}' down.")
    if toggle.button("Disable" if enabled else "Enable", key="rule_toggle", width="stretch"):
        save(
            rulesfile.set_enabled(doc.rules, rid, not enabled),
            f"{'Disabled' if enabled else 'Enabled'} '{rule['name']}'.",
        )
    if remove.button("Delete", key="rule_delete", type="secondary", width="stretch"):
        save(rulesfile.delete(doc.rules, rid), f"Deleted '{rule['name']}'.")
    edited = rule_form(f"edit_{rid}_{version}", rule, "Save changes")
    if edited is not None:
        save(rulesfile.put(doc.rules, edited, replacing=rid), f"Saved '{edited['name']}'.")

st.subheader("Add a rule")
new = rule_form(f"add_{version}", {"priority": rulesfile.free_priority(doc.rules)}, "Add rule")
if new is not None:
    save(rulesfile.put(doc.rules, new), f"Added '{new['name']}'.")
