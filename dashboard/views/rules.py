"""Rules: the rules in priority order, with match counts and health; create, edit, reorder, enable, delete.

A rule's health comes from the request log: the fallbacks from its target, and whether the
proxy has suspended it (lectr.proxy.rulehealth). A target model no price source knows gets a warning
(lectr.proxy.rulecheck): a new model, or a misspelt one.

Every change is validated as the proxy would validate it, then the file is replaced atomically
(with the rules in the database, the rules document is saved); a change over one someone else
saved since the page was drawn is refused. Every running proxy applies it to the next request
within a second.
"""

from __future__ import annotations

from datetime import timedelta

import common
import pandas as pd
import streamlit as st

from lectr.admin import rulesfile
from lectr.common.providers import PROVIDERS
from lectr.common.rules import TASKS, RuleError
from lectr.proxy import rulecheck, rulehealth
from lectr.store import StorageError

ctx = common.context()
source = ctx.rules_source  # the rules file, or the rules document in the database
st.title("Rules")
st.caption(
    f"`{source}` · first enabled match wins, lowest priority first · saved changes apply within a second · "
    f"one set of rules for every org: the counts are every org's requests in the {ctx.window}"
)

common.show_flash()

try:
    doc = rulesfile.read(source)
except (RuleError, OSError) as e:
    st.error(
        f"The rules cannot be edited here until they are fixed by hand (the proxy keeps the last good rules "
        f"meanwhile): {e}"
    )
    st.stop()
except StorageError as e:  # the proxies keep their rules meanwhile; nothing to fix here
    st.warning(f"The rules cannot be read from the database right now; reload the page in a moment. ({e})")
    st.stop()
drawn = common.as_shown(source, doc)  # what a change made on this page is a change of


def match_counts() -> dict[str, int]:
    """Requests each rule decided in the sidebar's window. Without a usable database the page still
    edits the rules file, just without counts."""
    if ctx.db_state != "ok":
        return {}
    try:
        return common.cached(ctx.store.rule_match_counts, ctx.since)
    except StorageError:
        return {}


def health() -> dict[str, dict]:
    """Store.rule_health by rule id: the state by each rule's latest request in the
    last 7 days (or the window, if longer); fallbacks and skips counted over the sidebar's window."""
    if ctx.db_state != "ok":
        return {}
    try:
        frame = common.cached(ctx.store.rule_health, min(ctx.now - timedelta(days=7), ctx.since), ctx.since)
    except StorageError:
        return {}
    return frame.set_index("rule_id").to_dict("index")


def unknown_targets(rules: list[dict]) -> dict[str, str]:
    """Rule id -> the target model no price source knows (lectr.proxy.rulecheck)."""
    common.use_prices(ctx.db)
    ruleset = rulesfile.validate(rules, str(source))  # valid: rulesfile.read checked it
    return {rule.id: rule.target_model for rule in rulecheck.unknown_target_models(ruleset.rules)}


STATES = {"suspended": "⊘ suspended", "failing": "⚠ failing", "ok": "✓ ok"}  # else "—": no requests


def last_fallback(h: dict) -> str:
    """'3 min ago: `gpt-5-nano` → 404 model_not_found: ...': a rule's last fallback, in a line of markdown."""
    status = "no response" if pd.isna(h["last_fallback_status"]) else int(h["last_fallback_status"])
    error = h["last_fallback_error"] if isinstance(h["last_fallback_error"], str) else status
    return f"{common.ago(h['last_fallback_at'])}: `{h['last_fallback_model']}` → {markdown_text(str(error))}"


def markdown_text(text: str) -> str:
    """A provider's error as text in markdown: `$` would start a formula."""
    return text.replace("$", "\\$")


def describe(mapping: dict | None) -> str:
    return ", ".join(f"{k}={v}" for k, v in (mapping or {}).items()) or "any request"


def describe_target(target: dict) -> str:
    """'gpt-4o-mini at openai', 'gpt-4o-mini', 'the same model at groq': short, for the table."""
    model, provider = target.get("model"), target.get("provider")
    if model and provider:
        return f"{model} at {provider}"
    return model or f"the same model at {provider}"


def save(rules: list[dict], message: str) -> None:
    try:
        ruleset = rulesfile.save(source, drawn, rules)
    except (RuleError, OSError, StorageError) as e:
        st.error(f"Not saved: {e}")
        return
    common.clear_cache()
    common.flash([("success", message), *(("warning", w) for w in ruleset.warnings)])


# Form keys carry the rules' version: after any saved change the forms show the rules afresh
# (a widget keeps its own state while its key stays the same).
version = doc.version[:8]
ordered = sorted(doc.rules, key=lambda r: r.get("priority", 0))
matched, healths, unknown = match_counts(), health(), unknown_targets(ordered)


def row(rule: dict) -> dict:
    rid = rulesfile.rule_id(rule)
    h = healths.get(rid)
    return {
        "priority": rule.get("priority"),
        "enabled": rule.get("enabled", True),
        "name": rule.get("name"),
        "conditions": describe(({"org": rule["org"]} if rule.get("org") else {}) | (rule.get("match") or {})),
        "target": ("⚠ " if rid in unknown else "") + describe_target(rule.get("target") or {}),
        "health": STATES[h["state"]] if h else "—",
        "matched": matched.get(rid, 0),
        "fallbacks": int(h["fallbacks"]) if h else 0,
    }


def trouble(rule: dict) -> str | None:
    """A rule's recent fallbacks and skips, in a line of markdown; None without any."""
    h = healths.get(rulesfile.rule_id(rule))
    if not h or (pd.isna(h["last_fallback_at"]) and pd.isna(h["last_skip_reason"])):
        return None
    parts = [
        f"**{rule.get('name')}**",
        STATES[h["state"]],
        f"{h['fallbacks']:,} fallbacks, {h['skipped']:,} skips in {ctx.short}",
    ]
    if not pd.isna(h["last_fallback_at"]):
        parts.append(f"last fallback {last_fallback(h)}")
    if isinstance(h["last_skip_reason"], str) and not h["last_skip_reason"].startswith(rulehealth.SUSPENDED):
        parts.append(f"last skipped: {markdown_text(h['last_skip_reason'])}")
    return " · ".join(parts)


for r in ordered:
    h = healths.get(rulesfile.rule_id(r))
    if h and h["state"] == "suspended":
        last = (
            f" {last_fallback(h)}"
            if not pd.isna(h["last_fallback_at"])
            else f": {markdown_text(h['last_skip_reason'])}"
        )
        st.warning(
            f"Rule **{r.get('name')}** is suspended: its target kept failing, so its requests pass through "
            f"unchanged until a trial request succeeds. Last failure{last}",
            icon=":material/block:",
        )
for r in ordered:
    if rulesfile.rule_id(r) in unknown:
        st.warning(
            f"Rule **{r.get('name')}** targets `{unknown[rulesfile.rule_id(r)]}`: {rulecheck.UNKNOWN_MODEL}. "
            f"No price data knows this model. {rulecheck.WHY}",
            icon=":material/spellcheck:",
        )
if ordered and not any(r.get("enabled", True) for r in ordered):
    st.info(
        "No rule is enabled: every request passes through unchanged. Enable one below (or set `enabled: true` in "
        "the rules) when you want Lectr to route.",
        icon=":material/info:",
    )
if ordered:
    table = pd.DataFrame(row(r) for r in ordered)
    st.dataframe(
        table,
        hide_index=True,
        key="rules_table",
        # The counts before the conditions: a long condition must not push them off the page.
        column_order=["priority", "enabled", "name", "health", "matched", "fallbacks", "target", "conditions"],
        column_config={
            "priority": st.column_config.NumberColumn("#", width=35, help="priority: the lowest matching goes first"),
            "enabled": st.column_config.CheckboxColumn("on", width=35, help="enabled"),
            "name": st.column_config.TextColumn("name", width=common.fit(table["name"], "name")),
            "conditions": st.column_config.TextColumn("when", width=common.fit(table["conditions"], "when")),
            "health": st.column_config.TextColumn(
                "health",
                width=100,
                help="by the rule's latest request (7 days): suspended (its target kept failing: not applied "
                "for now), failing (its target failed and the original answered), ok; —: no requests",
            ),
            "matched": st.column_config.NumberColumn(
                ctx.short,
                width=55,
                format="localized",
                help=f"requests the rule matched in the {ctx.window} (the sidebar's window)",
            ),
            "fallbacks": st.column_config.NumberColumn(
                width=65,
                help=f"in the {ctx.window}: requests whose rule target failed, and the original request answered",
            ),
            "target": st.column_config.TextColumn(
                "target",
                width=common.fit(table["target"], "target"),
                help="⚠: no price data knows the model (unknown model: check the spelling)",
            ),
        },
    )
    troubled = [line for line in map(trouble, ordered) if line]
    if troubled:
        st.markdown("**Fallbacks and skips** (last 7 days)")
        st.markdown("\n".join(f"- {line}" for line in troubled))
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
