"""What the fallback machinery costs a request that needs no fallback (target: 10 µs).

    python scripts/bench_fallback.py [--n 20000]

In-process, on mitmproxy's own test flows, with its addon manager dispatching the hooks
as the proxy does. Two kinds of request, each answered 200:
- unrouted: no rule applied. The cost is the Fallback addon's presence: its hooks
  (request, responseheaders, response: each dispatched, each returning at its guard) and
  the question the patched `send_response` asks before every response goes out;
- routed: a rule changed the model. The cost adds what is kept to fall back to (the
  client's headers and body, and how to plan the original request should it be needed),
  the fallback deadline set and cancelled, and the rule's health told of the success.
Each is the median, over 15 rounds of `n` requests, of the time taken over the same dispatch
without the Fallback, the two timed in alternate rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mitmproxy import http  # noqa: E402
from mitmproxy.proxy.layers.http import HttpRequestHook, HttpResponseHeadersHook, HttpResponseHook  # noqa: E402
from mitmproxy.test import taddons, tflow, tutils  # noqa: E402

from lectr.proxy.addons import RECORD, internals  # noqa: E402
from lectr.proxy.addons.fallback import Fallback  # noqa: E402
from lectr.proxy.addons.router import Router  # noqa: E402
from lectr.proxy.endpoints import parse_path  # noqa: E402
from lectr.proxy.flowrecord import FlowRecord  # noqa: E402
from lectr.proxy.routing import Original, Route  # noqa: E402

RULES = "rules:\n  - {name: mini, priority: 1, match: {feature: bot}, target: {model: gpt-4o-mini}}\n"
BODY = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}).encode()


class Added(NamedTuple):
    """µs per request the fallback machinery adds, median of the rounds."""

    unrouted_us: float  # no rule applied
    routed_us: float  # a rule applied, its target answered


def flow(feature: str | None) -> http.HTTPFlow:
    request = tutils.treq(
        host="127.0.0.1",
        port=8080,
        method=b"POST",
        path=b"/v1/chat/completions",
        headers=http.Headers(authorization="Bearer sk-client", content_type="application/json"),
        content=BODY,
    )
    f = tflow.tflow(req=request, resp=tutils.tresp(status_code=200))
    f.metadata[RECORD] = FlowRecord("base_url", org_id="acme", feature=feature)
    return f


class Script:
    """Lectr's addons as mitmproxy holds them: nested in the script's `addons` list."""

    def __init__(self, *addons: object) -> None:
        self.addons = list(addons)


async def added_us(run, baseline, flows: list[http.HTTPFlow], rounds: int = 15) -> float:
    """Median µs per flow that `run` takes over `baseline`, the two timed in alternate rounds
    so that the machine's noise falls on both alike."""

    async def timed(step) -> float:
        started = time.perf_counter()
        for f in flows:
            await step(f)
        return (time.perf_counter() - started) / len(flows) * 1e6

    return statistics.median([await timed(run) - await timed(baseline) for _ in range(rounds)])


async def measure(n: int) -> Added:
    workdir = Path(tempfile.mkdtemp())
    (workdir / "rules.yaml").write_text(RULES)
    os.environ["LECTR_OPENAI_BASE_URL"] = "http://sim:9000/v1"
    router, fallback = Router(), Fallback()
    with taddons.context(router, fallback) as tctx:
        tctx.configure(router, lectr_rules=str(workdir / "rules.yaml"), lectr_secrets=str(workdir / "none.yaml"))
        fallback.running()
        manager = tctx.master.addons
        # The hooks a request without a fallback meets after Router (the addon manager asks every
        # addon, as in the proxy: the script's list, with and without the Fallback in it).
        events = (HttpRequestHook, HttpResponseHeadersHook, HttpResponseHook)
        made: dict[str, tuple] = {}  # made once per request for all addons: not the Fallback's cost

        def prepare(flows: list[http.HTTPFlow]) -> list[http.HTTPFlow]:
            made.update({f.id: tuple(event(f) for event in events) for f in flows})
            return flows

        def dispatch(script: Script):
            async def run(f: http.HTTPFlow) -> None:
                for event in made[f.id]:
                    await manager.invoke_addon(script, event)
                if fallback in script.addons:
                    internals._resend(f, None)  # the question patched send_response asks

            return run

        without, with_fallback = dispatch(Script()), dispatch(Script(fallback))
        flows = prepare([flow(None) for _ in range(n)])
        unrouted = await added_us(with_fallback, without, flows)

        # Routed: the Original kept (as Router._plan does), then the hooks, which now set and
        # cancel a deadline and tell the rule's health.
        routed_flows = prepare([flow("bot") for _ in range(n)])
        for f in routed_flows:
            router.request(f)
        endpoint = parse_path("/v1/chat/completions")

        async def routed_run(f: http.HTTPFlow) -> None:
            record = f.metadata[RECORD]
            replan = functools.partial(router._route_plan, f, record, endpoint, Route("openai", "gpt-4o"), "openai")
            address = (f.request.scheme, f.request.host, f.request.port)
            record.original = Original(
                f.request.headers.fields, f.request.raw_content, address, "openai", "gpt-4o", "mini", replan
            )
            await with_fallback(f)

        routed = await added_us(routed_run, without, routed_flows)
        fallback.done()
    return Added(unrouted, routed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    args = parser.parse_args()
    result = asyncio.run(measure(args.n))
    print(f"fallback machinery, per request that needs no fallback ({args.n} requests a round, median of 15):")
    print(f"  unrouted (no rule applied): {result.unrouted_us:.2f} µs")
    print(f"  routed (a rule applied, its target answered): {result.routed_us:.2f} µs   (target: 10 µs)")


if __name__ == "__main__":
    main()
