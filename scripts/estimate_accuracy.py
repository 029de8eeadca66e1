"""How close Lectr's token estimate comes to what providers reported, on recorded traffic.

    python scripts/estimate_accuracy.py [--fixtures tests/fixtures/recorded] [--module path/to/estimate.py]

Each fixture (tests/fixtures/recorded, sources in its README) is a real exchange with the
usage its provider reported. The estimate reads the request and the response as the
writer does when no usage was reported (the stream's own usage is ignored), and is
compared with the reported prompt and completion tokens: as the tokeniser counts them,
and calibrated the way `tokens.Calibrator` scales them in production, by the ratio of
reported to counted tokens on the model's other exchanges (leave one out). A model with
no other exchange is calibrated on its provider's other exchanges of the same family.
`--module` measures another implementation of lectr/record/estimate.py (an older one, say).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import statistics
import sys
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lectr.common import usage  # noqa: E402
from lectr.record import estimate, renderings, tokens
from lectr.record import written as written_module

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "recorded"


class Measured(NamedTuple):
    name: str
    provider: str
    endpoint: str
    model: str
    kind: str
    reported: usage.Usage
    counted: usage.Usage


def load_fixtures(directory: Path = FIXTURES) -> list[dict]:
    fixtures = []
    for path in sorted(directory.glob("*.json")):
        fixture = json.loads(path.read_text())
        fixture["name"] = path.stem
        fixtures.append(fixture)
    return fixtures


def measure(fixture: dict, module=estimate) -> Measured:
    """The reported usage and the estimate of one recorded exchange."""
    style = usage.style_of(fixture["endpoint"])
    # Today's estimate reads the response with lectr.record.written; an older one did it itself.
    reader = module if hasattr(module, "body_output") or hasattr(module, "body_text") else written_module
    if "response_stream" in fixture:
        data = fixture["response_stream"].encode()
        reported = usage.from_stream(data, style)
        written = (
            reader.stream_output(data, style) if hasattr(reader, "stream_output") else reader.stream_text(data, style)
        )
    else:
        reported = usage.from_response(fixture["response_body"], style)
        body = fixture["response_body"]
        written = reader.body_output(body, style) if hasattr(reader, "body_output") else reader.body_text(body, style)
    counted = module.count(fixture["request"], written, style, fixture["model"])
    return Measured(
        fixture["name"], fixture["provider"], fixture["endpoint"], fixture["model"], fixture["kind"], reported, counted
    )


def calibration_key(m: Measured) -> str:
    """The model, a dated snapshot pooled with its alias to have enough exchanges per model.
    Production's Calibrator keys by the exact name the request's row carries (lectr.record.metering)."""
    return re.sub(r"-\d{8}$", "", m.model)


def calibrated(measured: list[Measured]) -> list[usage.Usage]:
    """Each exchange's estimate scaled by the Calibrator fed with the other exchanges of its
    model (or, for a model seen once, of its provider's family: claude-*, gpt-*, ...)."""
    out = []
    for i, m in enumerate(measured):
        others = [o for j, o in enumerate(measured) if j != i and calibration_key(o) == calibration_key(m)]
        if not others:
            family = renderings.rendering(m.model, usage.style_of(m.endpoint))
            others = [
                o
                for j, o in enumerate(measured)
                if j != i
                and o.provider == m.provider
                and o.endpoint == m.endpoint
                and renderings.rendering(o.model, usage.style_of(o.endpoint)) == family
            ]
        calibrator = tokens.Calibrator(min_samples=1)
        for o in others:
            calibrator.add("m", o.reported.prompt, o.counted.prompt, o.reported.completion, o.counted.completion)
        ratios = calibrator.ratios("m") or (1.0, 1.0)
        out.append(usage.Usage(round(m.counted.prompt * ratios[0]), round(m.counted.completion * ratios[1])))
    return out


def error(counted: int, reported: int) -> float:
    """Relative error; 0 when both are 0."""
    if reported == 0:
        return 0.0 if counted == 0 else 1.0
    return (counted - reported) / reported


def table(measured: list[Measured], scaled: list[usage.Usage]) -> str:
    """Per provider, endpoint and kind: median |error| and worst (signed) error."""
    groups: dict[tuple[str, str, str], list[int]] = {}
    for i, m in enumerate(measured):
        groups.setdefault((m.provider, m.endpoint, m.kind), []).append(i)

    def cell(errors: list[float]) -> str:
        worst = max(errors, key=abs)
        return f"{statistics.median(abs(e) for e in errors) * 100:5.1f} {worst * 100:+7.1f}"

    head = (
        f"{'provider':10} {'endpoint':17} {'kind':16} {'n':>3} | {'tokeniser prompt':>17} {'completion':>17} |"
        f" {'calibrated prompt':>17} {'completion':>17}"
    )
    lines = [
        head,
        f"{'':49}| {'median% worst%':>17} {'median% worst%':>17} | {'median% worst%':>17} {'median% worst%':>17}",
    ]
    lines.append("-" * len(head))
    for (provider, endpoint, kind), members in sorted(groups.items()):
        rows = [measured[i] for i in members]
        lines.append(
            f"{provider:10} {endpoint:17} {kind:16} {len(members):3} |"
            f" {cell([error(m.counted.prompt, m.reported.prompt) for m in rows]):>17}"
            f" {cell([error(m.counted.completion, m.reported.completion) for m in rows]):>17} |"
            f" {cell([error(scaled[i].prompt, measured[i].reported.prompt) for i in members]):>17}"
            f" {cell([error(scaled[i].completion, measured[i].reported.completion) for i in members]):>17}"
        )
    return "\n".join(lines)


def _module(path: str):
    spec = importlib.util.spec_from_file_location("estimate_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixtures", type=Path, default=FIXTURES)
    parser.add_argument("--module", help="another lectr/record/estimate.py to measure")
    parser.add_argument("--each", action="store_true", help="also print every exchange")
    args = parser.parse_args()
    module = _module(args.module) if args.module else estimate
    measured = [measure(f, module) for f in load_fixtures(args.fixtures)]
    scaled = calibrated(measured)
    print(f"{len(measured)} recorded exchanges; error = (estimate - reported) / reported\n")
    print(table(measured, scaled))
    if args.each:
        print()
        for m, s in zip(measured, scaled):
            print(
                f"{m.name[:70]:70} {m.kind:16} prompt {m.reported.prompt:6} {m.counted.prompt:6} {s.prompt:6}"
                f"  completion {m.reported.completion:6} {m.counted.completion:6} {s.completion:6}"
            )


if __name__ == "__main__":
    main()
