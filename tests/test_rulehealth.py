"""Rule health (lectr.proxy.rulehealth): suspension after consecutive fallbacks, a trial after the cool-down."""

import pytest

from lectr.proxy.rulehealth import SUSPENDED, Policy, RuleHealth


@pytest.fixture
def changes() -> list[str]:
    return []  # what the rule health told, in order


@pytest.fixture
def health(changes) -> RuleHealth:
    return RuleHealth(Policy(threshold=3, window=60, cooldown=30), notify=changes.append)


def test_a_rule_is_suspended_after_threshold_consecutive_failures(health, changes):
    for t in (0, 10):
        health.failed("r", "404 model_not_found", t)
        assert health.skip_reason("r", t + 1) is None
    health.failed("r", "404 model_not_found", 20)
    reason = health.skip_reason("r", 21)
    assert reason.startswith(SUSPENDED) and "failed 3 times in a row (last: 404 model_not_found)" in reason
    assert health.suspended() == {"r": "404 model_not_found"}
    assert changes == [
        "rule 'r' suspended for 30s after 3 consecutive failures (last: 404 model_not_found); "
        "matching requests pass through unchanged"
    ]
    assert health.skip_reason("other", 21) is None


def test_a_success_or_a_gap_longer_than_the_window_restarts_the_count(health, changes):
    health.failed("r", "e", 0)
    health.failed("r", "e", 1)
    health.succeeded("r")
    health.failed("r", "e", 2)
    assert health.skip_reason("r", 3) is None
    health.failed("r", "e", 100)  # 98 s after the last: a new count of one
    health.failed("r", "e", 101)
    assert health.skip_reason("r", 102) is None and changes == []


def test_after_the_cool_down_one_request_tries_and_a_success_resumes(health, changes):
    for t in range(3):
        health.failed("r", "503 overloaded", t)
    assert health.skip_reason("r", 31) is not None  # 29 s after: still cooling down
    assert health.skip_reason("r", 33) is None  # the trial
    assert health.skip_reason("r", 33.1) is not None  # the others wait for its answer
    health.succeeded("r")
    assert health.skip_reason("r", 34) is None and health.suspended() == {}
    assert changes[-2:] == [
        "rule 'r': cool-down over, one request tries its target again",
        "rule 'r' works again: resumed",
    ]


def test_a_failed_trial_suspends_for_another_cool_down(health, changes):
    for t in range(3):
        health.failed("r", "e", t)
    assert health.skip_reason("r", 40) is None
    health.failed("r", "still 404", 41)
    assert "still failing" in changes[-1]
    assert health.skip_reason("r", 70) is not None and health.skip_reason("r", 72) is None


def test_a_trial_that_never_ends_does_not_suspend_forever(health):
    for t in range(3):
        health.failed("r", "e", t)
    assert health.skip_reason("r", 40) is None  # the trial's client goes away: no answer ever
    assert health.skip_reason("r", 60) is not None
    assert health.skip_reason("r", 71) is None  # another trial, a cool-down later


def test_a_success_from_before_the_suspension_does_not_end_it(health):
    for t in range(3):
        health.failed("r", "e", t)
    health.succeeded("r")  # answered by a request routed before the suspension
    assert health.skip_reason("r", 5) is not None


@pytest.mark.parametrize("policy", [(0, 60, 60), (3, 0, 60), (3, 60, -1)])
def test_a_policy_that_cannot_work_is_refused(policy):
    with pytest.raises(ValueError, match="at least 1"):
        Policy(*policy)
