import os

from lectr.common.rules import RuleSet, load_rules_file
from lectr.common.watch import WatchedFile


def test_reload_on_change_and_keep_last_good_on_error(tmp_path):
    path = tmp_path / "rules.yaml"
    logged = []
    watched = WatchedFile(str(path), load_rules_file, RuleSet(), logged.append)
    assert not watched.poll() and watched.value == RuleSet()  # absent: the empty default

    path.write_text("rules:\n  - {name: a, priority: 1, target: {model: m}}\n")
    assert watched.poll()
    assert [r.name for r in watched.value.rules] == ["a"]
    assert not watched.poll()  # unchanged: nothing read

    path.write_text("rules:\n  - {name: a, priority: 1}\n")
    os.utime(path, ns=(1, 1))  # make sure the change is seen even within one mtime tick
    assert not watched.poll()
    assert [r.name for r in watched.value.rules] == ["a"]
    assert "'target' is required" in watched.error and "rejected" in logged[-1]

    path.unlink()
    assert not watched.poll()
    assert [r.name for r in watched.value.rules] == ["a"]


def test_a_passing_error_is_retried_at_the_next_poll(tmp_path):
    path = tmp_path / "value.txt"
    path.write_text("1")
    failures = [OSError("locked by another process")]

    def load(p):
        if failures:
            raise failures.pop()
        return int(open(p).read())

    logged = []
    watched = WatchedFile(str(path), load, 0, logged.append)
    assert not watched.poll() and "locked" in watched.error
    assert watched.poll() and watched.value == 1 and watched.error is None  # same file, read again
    assert len(logged) == 1
