"""RouteFiles: what Router routes with, compiled off the hot path and swapped in whole.

The rules (a file, or with `lectr_rules=db` the rules document in the store: lectr.proxy.yamlsource)
and the secrets file, reloaded within a second of a save (an invalid one is rejected and the last
good one stays in force), and every provider's base URL. A request only reads what is in force.
Router nests this addon (`Router.files`).
"""

from __future__ import annotations

import functools
import logging
import os

from mitmproxy import ctx

from lectr.common import providers
from lectr.common.rules import IN_DB, RULES_FILE, RuleError, RuleSet, parse_rules, read_rules_text, summary
from lectr.common.watch import Poller, WatchedFile
from lectr.prices import priceupdate
from lectr.proxy import rulecheck, yamlsource
from lectr.proxy.addons import option_error
from lectr.proxy.credentials import (
    DEFAULT_AZURE_API_VERSION,
    SECRETS_FILE,
    Credentials,
    load_credentials,
    parse_credentials,
    readable_by_others,
)
from lectr.proxy.endpoints import split_url

log = logging.getLogger(__name__)

# A saved rules file or document applies to the next request within a second. A poll is a stat, or
# (the rules in the database) a look at a counter in memory: cheap at this rate.
RELOAD_SECONDS = 0.25
BASE_URL_OPTIONS = {name: f"lectr_{name}_base_url" for name in providers.PROVIDERS}
AZURE_OPTIONS = {"LECTR_AZURE_BASE_URL": "lectr_azure_base_url", "LECTR_AZURE_API_VERSION": "lectr_azure_api_version"}


class RouteFiles:
    def __init__(self) -> None:
        self.rules: WatchedFile[RuleSet] = WatchedFile("", self._load_rules, RuleSet())
        self.credentials: WatchedFile[Credentials] = WatchedFile("", load_credentials, Credentials())
        self.base_urls = providers.base_urls()  # $LECTR_<PROVIDER>_BASE_URL, else the provider's: the options' defaults
        self.addons = [Poller(RELOAD_SECONDS, lambda: [self.rules, self.credentials], "routefiles")]

    def load(self, loader) -> None:
        loader.add_option(
            "lectr_rules",
            str,
            RULES_FILE,
            "Routing rules file (YAML; see rules.example.yaml), or db: the rules document in lectr_db's "
            "database, shared by every proxy on it (fill it with 'lectr rules import FILE'). Reloaded within a "
            "second of a save; invalid rules are rejected and the last good rules stay in force, as they do "
            "while the database cannot be read.",
        )
        loader.add_option(
            "lectr_secrets",
            str,
            SECRETS_FILE,
            "Provider keys and Azure settings Lectr uses when a rule switches provider "
            "(YAML; see lectr/proxy/credentials.py). LECTR_<PROVIDER>_API_KEY in the environment also works.",
        )
        for provider, option in BASE_URL_OPTIONS.items():
            builtin = providers.PROVIDERS[provider].base_url or "none (each org's endpoint: the secrets file)"
            loader.add_option(
                option,
                str,
                self.base_urls[provider],
                f"{provider}'s SDK-style base URL, to front a simulator or a self-hosted server. "
                f"Default: $LECTR_{provider.upper()}_BASE_URL, else {builtin}.",
            )
        loader.add_option(
            "lectr_azure_api_version",
            str,
            os.environ.get("LECTR_AZURE_API_VERSION", ""),
            "Azure api-version of the requests Lectr addresses to Azure, unless the secrets file names one. "
            f"Default: $LECTR_AZURE_API_VERSION, else {DEFAULT_AZURE_API_VERSION}.",
        )

    def configure(self, updated: set[str]) -> None:
        where = ctx.options.lectr_rules
        if "lectr_rules" in updated or (updated & yamlsource.STORE_OPTIONS and where == IN_DB):
            # The keys' store: several DuckDB workers each write a file of their own and share the main one.
            db = (ctx.options.lectr_keys_db or ctx.options.lectr_db) if where == IN_DB else ""
            self.rules = yamlsource.watch(
                where,
                db,
                "rules",
                self._load_rules,
                parse_rules,
                RuleSet(),
                log,
                _rules_loaded,
                confdir=ctx.options.confdir,
            )
            if where != IN_DB and not os.path.exists(where):
                log.info("No rules file at %s: every request passes through unrouted.", ctx.options.lectr_rules)
        if updated & set(BASE_URL_OPTIONS.values()):
            self.base_urls = {provider: _base_url(option) for provider, option in BASE_URL_OPTIONS.items()}
        if updated & {"lectr_secrets", *AZURE_OPTIONS.values()}:
            path, env = ctx.options.lectr_secrets, _credentials_env()
            self.credentials = WatchedFile(
                path, functools.partial(load_credentials, env=env), parse_credentials(None, env), log.error
            )
            self.credentials.poll()
            if readable_by_others(path):
                log.warning("%s holds provider keys and is readable by other users: chmod 600 %s", path, path)

    def _load_rules(self, path: str) -> RuleSet:
        text = read_rules_text(path)  # RuleError, not UnicodeDecodeError, for a file that is not UTF-8
        if not text.strip() and self.rules.value.rules:
            # An editor that truncates before it writes, or one that crashed: not a wish to drop every rule.
            raise RuleError(
                f"{path} is empty (a save in progress, or a failed one?); to remove every rule, save it as 'rules: []'"
            )
        return parse_rules(text, source=path)


def _rules_loaded(rules: WatchedFile[RuleSet]) -> None:
    log.info("rules loaded from %s: %s", rules.path, summary(rules.value))
    for warning in rules.value.warnings:
        log.warning(warning)
    try:
        _warn_unknown_models(rules.value)
    except Exception:  # a check that only warns must not stop rules from loading
        log.exception("could not check the rules' target models against the price data")


def _warn_unknown_models(rules: RuleSet) -> None:
    """A target model no price data knows loads all the same (new models come before their
    prices), with a warning: a misspelt one would fail each request over to the original."""
    unknown = rulecheck.unknown_target_models(rules.rules)
    if unknown and hasattr(ctx.options, "lectr_prices_file"):
        # The user's price file and fetched prices know models the bundled data does not (read
        # here, off the hot path: rules load in the file poller's thread).
        priceupdate.use_saved(ctx.options.lectr_db, ctx.options.lectr_prices_file)
        unknown = rulecheck.unknown_target_models(unknown)
    for rule in unknown:
        log.warning(rulecheck.unknown_model_warning(rule))


def _base_url(option: str) -> str:
    """A base URL option's value, checked (OptionsError), without a trailing slash."""
    url = getattr(ctx.options, option).rstrip("/")
    if url or option != BASE_URL_OPTIONS["azure"]:  # Azure has no global endpoint: empty is none
        try:
            split_url(url + "/")
        except ValueError as e:
            raise option_error(option, "an http:// or https:// URL", "e.g. http://127.0.0.1:9000/v1") from e
    return url


def _credentials_env() -> dict[str, str]:
    """The environment the secrets' defaults are read from, with the lectr_azure_* options for LECTR_AZURE_*."""
    env = dict(os.environ)
    for variable, option in AZURE_OPTIONS.items():
        value = getattr(ctx.options, option)
        if value:
            env[variable] = value
        else:
            env.pop(variable, None)
    return env
