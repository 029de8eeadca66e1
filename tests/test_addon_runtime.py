"""Runtime in mitmproxy's test context: the process's limits, the frozen heap, and failpoints."""

from __future__ import annotations

import gc
import resource

import pytest
from mitmproxy import exceptions
from mitmproxy.test import taddons

from lectr.common import faults
from lectr.proxy.addons.runtime import Runtime


@pytest.fixture
def runtime():
    addon = Runtime()
    with taddons.context(addon) as tctx:
        yield tctx, addon
        tctx.configure(addon, lectr_failpoints="")  # disarmed for the tests after


class TestRuntime:
    def test_the_open_files_limit_is_raised_at_load_and_reported(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or hard <= 256:
            pytest.skip(f"the hard open-files limit is {hard}: nothing to raise to here")
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        try:
            addon = Runtime()
            with taddons.context(addon):
                assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == hard == addon.open_files
                assert addon.status()["open_files_limit"] == hard
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    def test_running_freezes_the_heap_made_at_start(self, runtime):
        _, addon = runtime
        try:
            addon.running()
            assert addon.status()["gc_frozen"] > 0
        finally:
            gc.unfreeze()

    @pytest.mark.parametrize("spec", ["rules.evaluate=twice", "rules.evalute", "anomalies.run,nosuch.place=1"])
    def test_failpoints_that_are_not_lectrs_are_refused_with_the_places_there_are(self, runtime, spec):
        tctx, addon = runtime
        with pytest.raises(
            exceptions.OptionsError,
            match=rf"^lectr_failpoints must be NAME or NAME=TIMES, comma-separated, with NAME one of rules\.evaluate, "
            rf"aggregate\.run, anomalies\.run, recommend\.run, got '{spec}': e\.g\. ",
        ):
            tctx.configure(addon, lectr_failpoints=spec)
        assert faults.armed() == ""

    def test_the_option_arms_failpoints_in_this_process_as_the_environment_does(self, runtime):
        tctx, addon = runtime
        tctx.configure(addon, lectr_failpoints="rules.evaluate=1")
        assert faults.armed() == "rules.evaluate=1"
        with pytest.raises(faults.InjectedFault, match="rules.evaluate"):
            faults.check("rules.evaluate")
        faults.check("rules.evaluate")  # once only
        faults.check("anomalies.run")  # not armed
