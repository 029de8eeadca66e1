"""Shadow: picks the live requests a shadow experiment sends again to its candidate.

When the provider's whole response is in (mitmproxy's `response` hook: after the last chunk of
a stream, which the client already has; just before a non-streamed answer goes to the client),
a request that an enabled experiment matches is sampled at the experiment's rate. That costs a
lookup and a random number (timed, in lectr_overhead_us). A sampled request's record gets a
`ShadowOrder` (lectr.proxy.shadoworders); the Recorder puts it on the event, and the writer
process sends it once the event has crossed over and been metered (lectr.shadow.runner): never
on the request's time, and never changing it.

The experiments file (lectr.common.experiments) sits beside the rules file and is reloaded the
same way (with the rules in the database, the experiments document is there too:
lectr.proxy.yamlsource); its lectr_shadow_* options size the writer process's sender.
"""

from __future__ import annotations

import logging
import random

from mitmproxy import ctx, http

from lectr.common.experiments import (
    Experiments,
    ShadowSettings,
    experiments_path,
    load_experiments_file,
    parse_experiments,
)
from lectr.common.rules import IN_DB
from lectr.common.watch import Poller, WatchedFile
from lectr.proxy import yamlsource
from lectr.proxy.addons import at_least, record_of, timed
from lectr.proxy.addons.routefiles import RELOAD_SECONDS, RouteFiles
from lectr.proxy.flowrecord import FlowRecord
from lectr.proxy.shadoworders import SHADOWABLE, shadow_order

log = logging.getLogger(__name__)

SETTINGS = ShadowSettings()  # the lectr_shadow_* defaults


class Shadow:
    def __init__(self, files: RouteFiles) -> None:
        self.files = files  # Router's credentials and base URLs: a shadow request is addressed as a routed one
        self.experiments: WatchedFile[Experiments] = WatchedFile("", load_experiments_file, Experiments())
        self.addons = [Poller(RELOAD_SECONDS, lambda: [self.experiments], "shadow")]
        self.sampled = 0  # since start

    def load(self, loader) -> None:
        loader.add_option(
            "lectr_experiments",
            str,
            "",
            "Shadow experiments file (YAML; see lectr/common/experiments.py), or db: the experiments document in "
            "lectr_db's database (fill it with 'lectr experiments import FILE'). Default: experiments.yaml beside "
            "lectr_rules, or db when lectr_rules is db. Reloaded within a second of a save, like the rules.",
        )
        loader.add_option(
            "lectr_shadow_queue",
            int,
            SETTINGS.queue_size,
            "Sampled requests waiting to be sent to their candidate. When full, new samples are dropped and counted.",
        )
        loader.add_option("lectr_shadow_concurrency", int, SETTINGS.concurrency, "Shadow requests in flight at once.")

    def configure(self, updated: set[str]) -> None:
        if "lectr_shadow_queue" in updated:
            at_least("lectr_shadow_queue", 1, "samples", f"e.g. {SETTINGS.queue_size}")
        if "lectr_shadow_concurrency" in updated:
            at_least("lectr_shadow_concurrency", 1, "requests", f"e.g. {SETTINGS.concurrency}")
        where = experiments_path(ctx.options.lectr_rules, ctx.options.lectr_experiments)
        if updated & {"lectr_experiments", "lectr_rules"} or (updated & yamlsource.STORE_OPTIONS and where == IN_DB):
            # The keys' store: several DuckDB workers each write a file of their own and share the main one.
            db = (ctx.options.lectr_keys_db or ctx.options.lectr_db) if where == IN_DB else ""
            self.experiments = yamlsource.watch(
                where,
                db,
                "experiments",
                load_experiments_file,
                parse_experiments,
                Experiments(),
                log,
                self._loaded,
                confdir=ctx.options.confdir,
            )

    def status(self) -> dict[str, int]:
        return {"shadow_sampled": self.sampled, "experiments_running": len(self.experiments.value.running)}

    @timed
    def response(self, flow: http.HTTPFlow) -> None:
        record = record_of(flow)
        if record is None or record.org_id is None or not self.experiments.value.running:
            return
        try:
            self._sample(flow, record)
        except Exception:  # the cold path's business: never the response's
            log.exception("could not sample request %s for a shadow experiment", record.request_id)

    def _sample(self, flow: http.HTTPFlow, record: FlowRecord) -> None:
        response = flow.response
        if response is None or response.status_code != 200 or flow.error is not None:
            return  # only an answer can be compared
        if record.endpoint not in SHADOWABLE or record.model_actual is None or record.provider is None:
            return
        experiment = self.experiments.value.first_match(
            record.org_id, record.feature, record.task, record.provider, record.model_actual
        )
        if experiment is None or random.random() >= experiment.sample_rate:
            return
        record.shadow = shadow_order(
            experiment,
            org=record.org_id,
            endpoint=record.endpoint,
            provider=record.provider,
            credentials=self.files.credentials.value,
            base_urls=self.files.base_urls,
            client_fields=flow.request.headers.fields,
            secrets_file=self.files.credentials.path,
        )
        self.sampled += 1

    def _loaded(self, watched: WatchedFile[Experiments]) -> None:
        running = watched.value.running
        log.info(
            "experiments loaded from %s: %d, %d running", watched.path, len(watched.value.experiments), len(running)
        )
        credentials = self.files.credentials.value
        for e in running:
            provider = e.candidate_provider or e.provider  # None: whichever the traffic goes to
            if provider and not credentials.can_serve(e.org, provider):
                log.warning(
                    "experiment %r cannot send anything: Lectr has no %s key of its own%s; add it to the secrets "
                    "file or set LECTR_%s_API_KEY",
                    e.id,
                    provider,
                    f" for org {e.org!r}" if e.org else "",
                    provider.upper(),
                )
