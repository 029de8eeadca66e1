"""Lectr, as a mitmproxy addon:  mitmdump -s addons/lectr.py

This file only composes. Order matters: each request passes the addons in this order,
and each one leaves what it learnt on the flow's record for the next.
"""

import os
import sys

# Let `mitmdump -s addons/lectr.py` find the lectr package from a plain checkout too.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lectr.proxy.addons import internals  # noqa: E402

# Refuse to start (mitmdump exits, saying why) on a mitmproxy Lectr's patches do not fit.
internals.check()

from lectr.proxy.addons.auth import Auth  # noqa: E402
from lectr.proxy.addons.clientguard import ClientGuard  # noqa: E402
from lectr.proxy.addons.fallback import Fallback  # noqa: E402
from lectr.proxy.addons.gateway import Gateway  # noqa: E402
from lectr.proxy.addons.recorder import Recorder  # noqa: E402
from lectr.proxy.addons.router import Router  # noqa: E402
from lectr.proxy.addons.runtime import Runtime  # noqa: E402
from lectr.proxy.addons.schedule import Schedule  # noqa: E402
from lectr.proxy.addons.shadow import Shadow  # noqa: E402
from lectr.proxy.addons.streamtap import StreamTap  # noqa: E402
from lectr.proxy.addons.streamusage import StreamUsage  # noqa: E402
from lectr.proxy.addons.upstream import UpstreamGuard  # noqa: E402

fallback = Fallback()
router = Router(fallback.health)

addons = [
    Runtime(),  # open-files limit raised, start-up heap frozen for the garbage collector, failpoints
    Gateway(),  # which traffic is Lectr's; X-Lectr-* headers read and removed
    ClientGuard(),  # time limit on the client sending its request body
    Auth(),  # X-Lectr-Key -> org, or 401
    router,  # provider detection, rules (but suspended ones), auth normalisation, upstream address
    StreamUsage(),  # optionally asks for usage in streams (lectr_stream_usage=inject)
    UpstreamGuard(),  # upstream time limit; JSON errors when the provider cannot be reached
    fallback,  # a rule's target failed: the original request answers; a rule that keeps failing is suspended
    StreamTap(),  # SSE passed through chunk by chunk, with a copy for the cold path
    Shadow(router.files),  # once answered, a sample of an experiment's traffic is ordered sent to its candidate
    Recorder(),  # one event per finished request into the queue; a writer process stores it
    Schedule(),  # aggregator, anomaly detector, recommendation engine on their schedules (own process)
]
