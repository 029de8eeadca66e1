"""Property-based tests of the parsers that see outside data: request and response bodies,
SSE streams, headers, the rules and secrets files, request paths.

Each property says what the caller can rely on, whatever arrives: a value it can use, or
the module's own error (RuleError, CredentialsError, ValueError where documented), never
another exception. The pure modules only: no mitmproxy here (tests/test_bad_input.py
sends the same inputs through the running proxy).
"""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path

import brotli
import pyarrow as pa
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lectr.common import decompress, jsonbody, sse, usage
from lectr.common.events import Event
from lectr.common.providers import PROVIDERS
from lectr.common.rules import RuleError, RuleSet, load_rules_file, parse_rules
from lectr.prices import pricing
from lectr.proxy import endpoints
from lectr.proxy.credentials import Credentials, CredentialsError, parse_credentials
from lectr.proxy.endpoints import Endpoint, parse_path, split_url, upstream_url
from lectr.proxy.headers import (
    AUTH_HEADERS,
    LECTR_PREFIX,
    LectrHeaders,
    client_credential,
    invalid_field,
    split_lectr_headers,
    with_provider_auth,
)
from lectr.record import estimate, metering, tokens, written
from lectr.record.metering import Meter
from lectr.store import open_store
from lectr.store.duckdb_connection import column_types as _column_types
from lectr.store.duckdb_connection import connect

# No example database in the repository; a bounded number of examples keeps CI fast.
FAST = settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

STYLES = st.sampled_from(["openai", "anthropic", "responses"])
LONE_SURROGATES = ("\ud800", "\udbff", "\udc80", "\udcff", "\udfff")

# --- JSON values and the bodies that carry them ------------------------------------------

KEYS = st.sampled_from(
    (
        "model messages role content text tool_calls function arguments system input prompt instructions "
        "stream stream_options include_usage usage choices delta message type x_groq prompt_tokens "
        "completion_tokens input_tokens output_tokens cache_read_input_tokens cache_creation_input_tokens "
        "prompt_tokens_details input_tokens_details cached_tokens partial_json thinking"
    ).split()
) | st.text(max_size=6)
TEXT = (
    st.text(max_size=20)
    | st.sampled_from(LONE_SURROGATES)
    | st.builds("".join, st.lists(st.sampled_from(["a", " ", "é", "\ud800", "\n", "\x00"]), max_size=8))
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-10, max_value=10_000),
    st.integers(),
    st.integers(min_value=2**62, max_value=2**70),  # beyond BIGINT
    st.floats(),  # nan and inf included
    TEXT,
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=5),
    max_leaves=25,
)


def dump(value: object, ascii: bool = True, spaced: bool = True) -> bytes:
    """JSON text as a client might send it; lone surrogates become invalid UTF-8 when not escaped."""
    separators = (", ", ": ") if spaced else (",", ":")
    return json.dumps(value, ensure_ascii=ascii, separators=separators).encode("utf-8", "surrogatepass")


def _nested(depth: int, closed: bool) -> bytes:
    return b'{"model":"gpt-4o","messages":' + b"[" * depth + (b"]" * depth if closed else b"") + b"}"


NUMBERS = [
    b"1e400",
    b"-1e400",
    b"1" * 5000,
    b"-" + b"9" * 4301,
    b"NaN",
    b"Infinity",
    b"-0",
    b"1e-400",
    b"0.1" + b"0" * 400,
]
BAD_UTF8 = [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xe2\x82", b"\xf4\x90\x80\x80", b"\xc0\xaf"]

NASTY_BODIES = st.one_of(
    st.binary(max_size=200),
    st.builds(dump, JSON_VALUES, st.booleans(), st.booleans()),
    st.builds(dump, st.fixed_dictionaries({"model": TEXT, "messages": JSON_VALUES}, optional={"stream": JSON_VALUES})),
    st.builds(_nested, st.integers(1, 60) | st.integers(2000, 100_000), st.booleans()),
    st.sampled_from(NUMBERS).map(lambda n: b'{"model":"gpt-4o","messages":[],"n":' + n + b"}"),
    st.tuples(TEXT, TEXT).map(lambda m: b'{"model":' + dump(m[0]) + b',"model":' + dump(m[1]) + b"}"),
    st.sampled_from(BAD_UTF8).map(lambda b: b'{"model":"gpt-4o","messages":[{"role":"user","content":"a' + b + b'"}]}'),
    st.sampled_from(LONE_SURROGATES).map(lambda s: b'{"model":"gpt-4o","messages":[],"x":' + dump(s) + b"}"),
    st.just(b'{"model":"' + b"g" * 100_000 + b'","messages":[]}'),
)
# Any of them cut short, as a client that died mid-send would leave it.
BODIES = NASTY_BODIES | st.tuples(NASTY_BODIES, st.integers(0, 1000)).map(lambda t: t[0][: t[1]])


def strict_loads(data: bytes) -> object:
    """JSON as the RFC has it: no NaN or Infinity, no duplicate keys, no number beyond a double."""

    def pairs(items: list) -> dict:
        assert len({k for k, _ in items}) == len(items), "duplicate keys"
        return dict(items)

    def constant(name: str) -> object:
        raise AssertionError(f"{name} is not JSON")

    value = json.loads(data, object_pairs_hook=pairs, parse_constant=constant)
    json.dumps(value, allow_nan=False)  # 1e400 loads as inf: not what was sent
    return value


def is_json_value(value: object) -> bool:
    # With a stack, not recursion: Python 3.12+ parses JSON nested deeper than its own recursion limit.
    stack = [value]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            if not all(isinstance(k, str) for k in value):
                return False
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif not (value is None or isinstance(value, (bool, int, float, str))):
            return False
    return True


def assert_usage(found: usage.Usage | None) -> None:
    """None, or counts the database can store."""
    if found is None:
        return
    for count in found:
        assert count is None or (isinstance(count, int) and 0 <= count < 2**63), found


# --- usage.py -----------------------------------------------------------------------------


@FAST
@given(body=BODIES)
@example(body=b"[" * 100_000)
@example(body=b'{"a":"\xff"}')
def test_parse_json_gives_a_json_value_or_none(body):
    value = jsonbody.parse_json(body)
    assert value is None or is_json_value(value)
    if value is None and body:
        reason = jsonbody.unreadable_reason(body)
        assert reason is None or "too" in reason


def test_json_lectr_cannot_read_is_told_apart_from_json_that_is_not_json():
    assert jsonbody.parse_json(b'{"n":' + b"1" * 5000 + b"}") is None
    assert "integer too long" in jsonbody.unreadable_reason(b'{"n":' + b"1" * 5000 + b"}")
    assert "nested too deeply" in jsonbody.unreadable_reason(_nested(100_000, closed=True))
    assert jsonbody.unreadable_reason(b"not json") is None
    assert jsonbody.unreadable_reason(b'{"a":"\xff"}') is None
    assert jsonbody.unreadable_reason(b"null") is None  # JSON null: parse_json says None too


@FAST
@given(value=JSON_VALUES, style=STYLES)
@example(value={"usage": {"prompt_tokens": 2**64, "completion_tokens": 1}}, style="openai")
@example(
    value={"usage": {"input_tokens": 2**62, "output_tokens": 1, "cache_read_input_tokens": 2**62}}, style="anthropic"
)
@example(value={"usage": {"prompt_tokens": True, "completion_tokens": -1}}, style="openai")
def test_usage_from_any_response_is_none_or_storable_counts(value, style):
    assert_usage(usage.from_response(value, style))
    assert_usage(usage.normalise(value, style))
    if isinstance(value, dict):
        assert_usage(usage.normalise(value.get("usage"), style))


@FAST
@given(value=JSON_VALUES, style=STYLES)
@example(value={"messages": 5}, style="openai")
@example(value={"messages": [{"tool_calls": 5}]}, style="openai")
@example(value={"messages": "hello", "system": 7, "input": {"text": 1}}, style="anthropic")
def test_prompt_texts_of_any_request_are_strings(value, style):
    texts = estimate.prompt_texts(value, style)
    assert isinstance(texts, list) and all(isinstance(t, str) for t in texts)
    assert isinstance(estimate.message_count(value), int) and estimate.message_count(value) >= 0


def test_prompt_texts_of_a_well_formed_request():
    body = {
        "system": "be terse",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "a"}, "b"]},
            {"role": "assistant", "tool_calls": [{"function": {"arguments": '{"x":1}'}}]},
        ],
    }
    assert estimate.prompt_texts(body, "anthropic") == ["be terse", "a", "b", '{"x":1}']


@FAST
@given(data=BODIES, changes=st.dictionaries(st.sampled_from(["model", "stream_options"]), JSON_VALUES, max_size=2))
@example(data=b'{"model":"gpt-4o","messages":[],"x":1e400}', changes={"model": "gpt-4o-mini"})
@example(data=b'{"model":"gpt-4o","messages":[],"x":"\\ud800"}', changes={"model": "gpt-4o-mini"})
@example(data=b'{"model":"gpt-4o","model":"gpt-4o"}', changes={"model": "gpt-4o-mini"})
@example(data=b'{"model":"gpt-4o","n":' + b"7" * 5000 + b"}", changes={"model": "gpt-4o-mini"})
@example(data=b'{"model":"gpt-4o","x":NaN}', changes={"model": "gpt-4o-mini"})
def test_a_rewritten_body_says_what_the_client_sent_with_only_the_changes(data, changes):
    """The provider never gets invalid JSON, nor a body that means something else."""
    rewritten = jsonbody.rewrite_json(data, changes)
    if rewritten is None:
        return  # forwarded unchanged
    original = strict_loads(data)  # a rewrite happens only for bodies that are plain JSON
    assert strict_loads(rewritten) == {**original, **changes}
    rewritten.decode("utf-8")  # and valid UTF-8


@FAST
@given(body=st.dictionaries(KEYS, JSON_VALUES, max_size=5), model=TEXT, ascii=st.booleans())
def test_any_plain_json_object_can_be_rewritten(body, model, ascii):
    data = dump(body, ascii)
    try:
        strict_loads(data)
    except (AssertionError, ValueError):
        return  # holds inf or nan: rightly refused (the property above)
    assert jsonbody.rewrite_json(data, {"model": model}) is not None


def test_what_cannot_be_rewritten_faithfully_is_refused():
    assert jsonbody.rewrite_json(b'{"model":"gpt-4o","x":1e400}', {"model": "m"}) is None
    assert jsonbody.rewrite_json(b'{"model":"gpt-4o","model":"claude-x"}', {"model": "m"}) is None
    assert jsonbody.rewrite_json(b'{"model":"a","x":{"k":1,"k":2}}', {"model": "m"}) is None
    assert jsonbody.rewrite_json(b'{"model":"a","x":NaN}', {"model": "m"}) is None
    assert jsonbody.rewrite_json(b'["model"]', {"model": "m"}) is None
    # A lone surrogate stays the escape the client sent; other text stays as it was.
    assert jsonbody.rewrite_json(b'{"model":"a","x":"\\ud800","y":"\xc3\xa9"}', {"model": "m"}) == (
        b'{"model": "m", "x": "\\ud800", "y": "\\u00e9"}'
    )
    assert jsonbody.rewrite_json(b'{"model":"a","y":"\xc3\xa9"}', {"model": "m"}) == '{"model": "m", "y": "é"}'.encode()


ENCODERS = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotli.compress,
    "zstd": lambda b: decompress.zstd_module().compress(b),
}


@FAST
@given(data=st.binary(max_size=2000), encoding=st.sampled_from([*ENCODERS, "identity", "", "GZIP", "x-gzip"]))
def test_content_encodings_round_trip(data, encoding):
    encode = ENCODERS.get(encoding.lower().removeprefix("x-"), lambda b: b)
    assert decompress.decoded(encode(data), encoding) == data


@FAST
@given(data=st.binary(max_size=300), encoding=st.sampled_from([*ENCODERS, "compress", "br, gzip", "\xff"]))
def test_broken_or_unknown_encodings_give_none(data, encoding):
    result = decompress.decoded(data, encoding)
    assert result is None or isinstance(result, bytes)


@pytest.mark.parametrize("encoding", list(ENCODERS))
def test_a_compression_bomb_is_not_decompressed(monkeypatch, encoding):
    monkeypatch.setattr(decompress, "DECODED_LIMIT", 1024 * 1024)
    assert decompress.decoded(ENCODERS[encoding](b"\0" * (1024 * 1024)), encoding) == b"\0" * (1024 * 1024)
    bomb = ENCODERS[encoding](b"\0" * (1024 * 1024 + 1))
    assert decompress.decoded(bomb, encoding) is None


# --- SSE streams --------------------------------------------------------------------------

LINE_ENDS = st.sampled_from([b"\n", b"\r\n", b"\r"])


def chunk_payload(value: dict, spaced: bool) -> bytes:
    return dump(value, ascii=True, spaced=spaced)


OPENAI_CHUNKS = st.one_of(
    st.builds(
        lambda text, usage_null: {
            "id": "c1",
            "choices": [{"index": 0, "delta": {"content": text}}],
            **({"usage": None} if usage_null else {}),
        },
        TEXT,
        st.booleans(),
    ),
    st.builds(
        lambda p, c: {"id": "c1", "choices": [], "usage": {"prompt_tokens": p, "completion_tokens": c}},
        st.integers(0, 2**70),
        st.integers(-5, 100),
    ),  # fmt: skip
    st.builds(
        lambda v: {"id": "c1", "choices": [{"delta": {"x": {"usage": None}}}], "usage": v}, st.none() | st.just({})
    ),
    st.builds(lambda u: {"usage": None, "choices": [], "x_groq": u}, JSON_VALUES),
    st.dictionaries(KEYS, JSON_VALUES, max_size=4),
)
FIELD_LINES = st.one_of(
    st.builds(
        lambda v, spaced, space: b"data:" + (b" " if space else b"") + chunk_payload(v, spaced),
        OPENAI_CHUNKS,
        st.booleans(),
        st.booleans(),
    ),  # fmt: skip
    st.sampled_from([b"data: [DONE]", b"event: message_delta", b": keep-alive", b"id: 7", b"retry: 100", b"data:"]),
    st.builds(lambda b: b"data: " + b, st.binary(max_size=30)),
    st.builds(lambda n: b"data: " + b"[" * n, st.integers(2000, 50_000)),
)


@st.composite
def sse_streams(draw, fields=FIELD_LINES, cut: bool = True) -> bytes:
    out = b""
    for _ in range(draw(st.integers(0, 6))):
        lines = draw(st.lists(fields, min_size=1, max_size=3))
        for line in lines:
            out += line + draw(LINE_ENDS)
        out += draw(LINE_ENDS)  # the blank line that ends the event
    if cut and out and draw(st.booleans()):
        out = out[: draw(st.integers(0, len(out)))]  # cut anywhere, mid-event included
    return out


@FAST
@given(data=sse_streams() | st.binary(max_size=200))
def test_split_events_loses_nothing(data):
    events, rest = sse.split_events(data)
    assert b"".join(events) + rest == data
    assert all(sse._EVENT_END.search(e) and sse._EVENT_END.search(e).end() == len(e) for e in events)
    assert sse._EVENT_END.search(rest) is None
    for event in events + [rest]:
        payload = sse.event_data(event)
        assert payload is None or isinstance(payload, str)


@FAST
@given(data=sse_streams() | st.binary(max_size=200))
@example(data=b"data: " + b"[" * 100_000 + b"\n\n")
def test_iter_json_yields_objects_and_never_raises(data):
    assert all(isinstance(value, dict) for value in sse.iter_json(data))


@FAST
@given(data=sse_streams() | st.binary(max_size=200), style=STYLES)
@example(data=b'data: {"usage": null, "x_groq": "abc", "y": {"usage": {}}}\n\n', style="openai")
@example(data=b'data: {"type":"message_start","message":[1],"usage":{}}\r\n\r\n', style="anthropic")
def test_from_stream_reads_any_stream(data, style):
    assert_usage(usage.from_stream(data, style))
    assert isinstance(written.stream_output(data, style).all_text(), str)


def feed(chunks: list[bytes]) -> bytes:
    f = sse.UsageChunkFilter()
    return b"".join(f(chunk) for chunk in chunks if chunk) + f(b"")


@FAST
@given(data=sse_streams(), cuts=st.lists(st.integers(0, 10_000), max_size=8))
def test_the_usage_filter_gives_the_same_bytes_however_the_stream_is_chunked(data, cuts):
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]
    assert feed(chunks) == feed([data])


@FAST
@given(
    data=sse_streams(fields=FIELD_LINES.filter(lambda line: b'"usage"' not in line)),
    cuts=st.lists(st.integers(0, 10_000), max_size=4),
)
def test_a_stream_without_usage_passes_the_filter_byte_for_byte(data, cuts):
    points = sorted({c % (len(data) + 1) for c in cuts})
    assert feed([data[a:b] for a, b in zip([0, *points], [*points, len(data)])]) == data


@FAST
@given(data=sse_streams(cut=False))
def test_the_usage_filter_only_takes_out_what_include_usage_added(data):
    """Event by event: unchanged; dropped if it was the usage-only chunk; or the same JSON
    without a top-level `"usage": null`."""
    events, _ = sse.split_events(data)
    for event in events:
        out = sse._without_usage(event)
        if out == event:
            continue
        before = json.loads(sse.event_data(event))
        if out == b"":
            assert before["choices"] == [] and isinstance(before["usage"], dict)
        else:
            assert before["usage"] is None
            assert json.loads(sse.event_data(out)) == {k: v for k, v in before.items() if k != "usage"}


def test_the_usage_filter_on_openai_streams():
    def event(value: dict, spaced: bool, end: bytes) -> bytes:
        return b"data: " + chunk_payload(value, spaced) + end + end

    text = {"id": "c", "choices": [{"delta": {"content": "hi"}}], "usage": None}
    final = {"id": "c", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}
    nested = {"id": "c", "choices": [{"delta": {"x": {"a": 1, "usage": None}}}], "usage": None}
    stream = event(text, True, b"\r\n") + event(final, False, b"\n") + event(nested, False, b"\r")
    out = feed([stream[:7], stream[7:40], stream[40:]])
    assert out == event({"id": "c", "choices": [{"delta": {"content": "hi"}}]}, True, b"\r\n") + event(
        nested, False, b"\r"
    )  # the nested chunk kept whole: which "usage" is the top-level one is not told by the text
    cut = event(text, False, b"\n")[:-5]
    assert feed([cut]) == cut  # a stream cut mid-event: the rest goes out as it came


# --- headers ------------------------------------------------------------------------------


@st.composite
def any_case(draw, name: bytes) -> bytes:
    flips = draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
    return bytes(c ^ 0x20 if flip and chr(c).isalpha() else c for c, flip in zip(name, flips))


HEADER_NAMES = st.one_of(
    st.sampled_from(
        [b"x-lectr-key", b"x-lectr-feature", b"x-lectr-task", b"x-lectr-provider", b"x-lectr-", b"x-lectr-other"]
    ).flatmap(any_case),  # fmt: skip
    st.sampled_from([*AUTH_HEADERS, b"content-type", b"anthropic-version", b"x-lectr", b"xx-lectr-key"]).flatmap(
        any_case
    ),
    st.binary(max_size=12),
)
HEADER_VALUES = st.binary(max_size=30) | st.lists(
    st.sampled_from(
        [b"a", b" ", b"\r", b"\n", b"\r\n", b"\x00", b"\xff", b"\xc3\xa9", b"Bearer ", b"bearer", b"sk-1", b"\t"]
    ),
    max_size=8,
).map(b"".join)
FIELDS = st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=8).map(tuple)


@FAST
@given(fields=FIELDS)
@example(fields=((b"X-LECTR-FEATURE", b"\xff\r\n"), (b"x-Lectr-Key", b"lk_\x00"), (b"a", b"b")))
def test_no_x_lectr_field_gets_through_whatever_its_case_or_value(fields):
    meta, kept = split_lectr_headers(fields)
    assert kept == tuple(f for f in fields if not f[0].lower().startswith(LECTR_PREFIX))
    assert isinstance(meta, LectrHeaders)
    for name in ("key", "feature", "task", "provider"):
        sent = [
            v.decode("utf-8", "surrogateescape").strip() for n, v in fields if n.lower() == LECTR_PREFIX + name.encode()
        ]
        expected = ([v for v in sent if v] or [None])[-1]  # the last one that says something
        if name == "provider" and expected is not None:
            expected = expected.lower()
        assert getattr(meta, name) == expected


@FAST
@given(fields=FIELDS, provider=st.sampled_from(list(PROVIDERS)))
@example(fields=((b"Authorization", b"Bearer sk-\xff\xfe"),), provider="openai")
@example(fields=((b"x-api-key", b"sk-\xff"),), provider="anthropic")
def test_the_client_key_goes_on_as_the_bytes_it_was(fields, provider):
    key = client_credential(fields)
    if key is not None:
        assert key and key == key.strip()
        raw = key.encode("utf-8", "surrogateescape")
        assert any(raw in v for n, v in fields if n.lower() in AUTH_HEADERS)
    out = with_provider_auth(fields, provider, key)
    auth = [(n, v) for n, v in out if n.lower() in AUTH_HEADERS]
    if key:
        ((name, value),) = auth  # exactly one, the provider's own
        assert name == PROVIDERS[provider].auth.encode()
        assert value.endswith(key.encode("utf-8", "surrogateescape"))
    else:
        assert auth == []
    assert [f for f in out if f[0].lower() not in AUTH_HEADERS + (b"anthropic-version",)] == [
        f for f in fields if f[0].lower() not in AUTH_HEADERS + (b"anthropic-version",)
    ]


@FAST
@given(fields=FIELDS)
def test_invalid_field_finds_cr_lf_and_nul_in_values(fields):
    bad = [n for n, v in fields if b"\r" in v or b"\n" in v or b"\x00" in v]
    assert invalid_field(fields) == (bad[0] if bad else None)


# --- the rules file -----------------------------------------------------------------------

RULE_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-2, 5), st.integers(), st.floats(), TEXT,
    st.sampled_from(["gpt-4o", "gpt-4o-mini", "openai", "groq", "OpenAI", "classification", "nope", ""]),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)  # fmt: skip
RULE_ITEMS = st.fixed_dictionaries(
    {},
    optional={
        "name": RULE_VALUES | st.text(min_size=1, max_size=10),
        "priority": RULE_VALUES | st.integers(1, 4),
        "enabled": RULE_VALUES,
        "id": RULE_VALUES,
        "org": RULE_VALUES,
        "match": RULE_VALUES
        | st.dictionaries(st.sampled_from(["feature", "task", "provider", "model", "x"]), RULE_VALUES),
        "target": RULE_VALUES | st.dictionaries(st.sampled_from(["provider", "model", "x"]), RULE_VALUES, min_size=1),
        "extra": RULE_VALUES,
    },
)
RULE_DOCS = st.one_of(
    st.builds(lambda rules: {"rules": rules}, st.lists(RULE_ITEMS | RULE_VALUES, max_size=4)),
    RULE_VALUES,
    st.dictionaries(st.sampled_from(["rules", "other"]), RULE_VALUES),
)


def yaml_text(doc: object, flow: bool, unicode: bool) -> str:
    try:
        return yaml.safe_dump(doc, default_flow_style=flow, allow_unicode=unicode)
    except yaml.YAMLError:
        return "rules: []"


def assert_rules(text: str) -> None:
    try:
        rules = parse_rules(text)
    except RuleError as e:
        assert str(e).startswith("rules file: ")
        return
    assert isinstance(rules, RuleSet)
    for rule in rules.rules:
        assert rule.name and isinstance(rule.priority, int) and rule.priority >= 1
        assert rule.target_model or rule.target_provider
        assert rule.provider is None or rule.provider in PROVIDERS
    assert len({r.priority for r in rules.rules}) == len(rules.rules)


# The examples enabled, as a user has them: a file cut anywhere then builds the routing index too
# (as shipped, every example is disabled).
VALID_RULES = (
    (Path(__file__).resolve().parent.parent / "rules.example.yaml")
    .read_text()
    .replace("enabled: false", "enabled: true")
)

YAML_TEXT = st.one_of(
    st.text(max_size=200),
    st.builds(yaml_text, RULE_DOCS, st.booleans(), st.booleans()),
    st.binary(max_size=200).map(lambda b: b.decode("utf-8", "replace")),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    st.builds(lambda n, c: "rules: " + c * n, st.integers(1, 1500), st.sampled_from(["{a: ", "- "])),
    st.sampled_from(["a: 2024-02-30", "rules: !!bool x", "rules: !!int abc", "? [1]\n: 2", "rules: *x", "\t", "\x00"]),
)


@FAST
@given(text=YAML_TEXT)
@example(text="[" * 1100)  # PyYAML's scanner is quadratic in "[": deep enough to pass the recursion limit
@example(text='rules:\n  - name: r\n    priority: 1\n    target: {model: "\\ud800"}\n')
def test_any_rules_text_gives_a_rule_set_or_a_rule_error(text):
    assert_rules(text)


@FAST
@given(offset=st.integers(0, len(VALID_RULES)))
def test_a_rules_file_cut_anywhere_gives_a_rule_set_or_a_rule_error(offset):
    assert_rules(VALID_RULES[:offset])


def test_the_example_rules_file_is_valid():
    rules = parse_rules(VALID_RULES)
    assert len(rules.rules) >= 3 and rules.enabled == rules.rules


@SLOW
@given(data=st.binary(max_size=200) | st.just(VALID_RULES.encode()[:300] + b"\xff\xfe"))
def test_a_rules_file_of_any_bytes_gives_a_rule_set_or_a_rule_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("rules") / "rules.yaml"
    path.write_bytes(data)
    try:
        assert isinstance(load_rules_file(path), RuleSet)
    except RuleError as e:
        assert str(path) in str(e)


# --- the secrets file ---------------------------------------------------------------------

SECRET_DOCS = st.one_of(
    RULE_VALUES,
    st.fixed_dictionaries(
        {},
        optional={
            "providers": RULE_VALUES
            | st.dictionaries(
                st.sampled_from([*PROVIDERS, "nope"]),
                RULE_VALUES
                | st.dictionaries(
                    st.sampled_from(["api_key", "endpoint", "api_version", "deployments", "x"]), RULE_VALUES
                ),  # fmt: skip
                max_size=3,
            ),
            "orgs": RULE_VALUES | st.dictionaries(st.text(max_size=5), RULE_VALUES | st.just({"providers": {}})),
            "other": RULE_VALUES,
        },
    ),
)


@FAST
@given(text=st.builds(yaml_text, SECRET_DOCS, st.booleans(), st.booleans()) | YAML_TEXT)
@example(text='providers: {groq: {api_key: "sk-secret}}')
def test_any_secrets_text_gives_credentials_or_a_credentials_error(text):
    try:
        credentials = parse_credentials(text, env={})
    except CredentialsError as e:
        assert "sk-secret" not in str(e)  # the error goes to the log: no key in it
        return
    assert isinstance(credentials, Credentials)
    for provider in PROVIDERS:
        settings_ = credentials.settings("acme", provider)
        assert settings_.api_key is None or isinstance(settings_.api_key, str)


# --- paths and URLs -----------------------------------------------------------------------

PATHS = st.one_of(
    st.text(max_size=60),
    st.builds(
        lambda root, tail, query: root + tail + query,
        st.sampled_from(["/v1/", "/openai/v1/", "/v1beta/openai/", "/openai/deployments/", "/v1/messages", "/"]),
        st.text(max_size=30),
        st.sampled_from(["", "?", "?api-version=1", "?a=\n", "?%ff"]),
    ),
)
BASES = st.sampled_from(["http://127.0.0.1:9000", "https://api.example.com", "http://[::1]:81/x"])


@FAST
@given(path=PATHS)
@example(path="/v1/chat/completions\n")
@example(path="/openai/deployments/d\n/chat/completions")
def test_any_path_is_an_endpoint_or_none_and_addresses_a_url(path):
    endpoint = parse_path(path)
    if endpoint is None:
        return
    assert isinstance(endpoint, Endpoint) and endpoint.suffix.startswith("/")
    for provider in PROVIDERS:
        try:
            url = upstream_url("http://127.0.0.1:9000", provider, endpoint, "2024-10-21", None)
        except ValueError:
            assert provider == "azure" and endpoint.deployment is None
            continue
        upstream = split_url(url)  # the router parses it before changing the request
        assert upstream.path.startswith("/") and endpoint.suffix in upstream.path


@FAST
@given(url=st.text(max_size=60) | st.builds(lambda b, t: b + t, BASES, st.text(max_size=20)))
@example(url="http://a:" + "9" * 5000 + "/x")
@example(url="http://a:\u0661\u0662/x")
def test_split_url_gives_an_upstream_or_a_value_error(url):
    try:
        upstream = split_url(url)
    except ValueError:
        return
    assert upstream.scheme in ("http", "https") and upstream.port >= 0 and upstream.path.startswith("/")


def test_long_paths_are_parsed_but_not_cached():
    before = endpoints._parse_path_cached.cache_info().currsize
    long = "/v1/chat/completions?" + "x" * 100_000
    assert parse_path(long) == Endpoint("/chat/completions", "x" * 100_000)
    assert split_url("http://h" + long).path == long
    assert endpoints._parse_path_cached.cache_info().currsize == before


# --- metering: the writer process meters every event ---------------------------------------

COLUMN_TYPES = _column_types("request_logs")


def encoded(data: bytes, encoding: str) -> bytes:
    return ENCODERS[encoding](data) if encoding in ENCODERS else data


@st.composite
def events(draw) -> Event:
    streaming = draw(st.booleans())
    request_encoding = draw(st.sampled_from(["", "identity", "gzip", "br", "weird"]))
    response_encoding = draw(st.sampled_from(["", "gzip", "zstd", "deflate"]))
    request = draw(BODIES)
    response = draw(sse_streams() if streaming else BODIES)
    if draw(st.booleans()):  # a body encoded as its header says; else the header lies
        request, response = encoded(request, request_encoding), encoded(response, response_encoding)
    header_text = st.binary(max_size=12).map(lambda b: b.decode("utf-8", "surrogateescape")) | st.none()
    model = draw(st.none() | TEXT | st.sampled_from(["gpt-4o", "claude-sonnet-4-5", "g" * 100_000]))
    return Event(
        ts=1_750_000_000.0, request_id="r", org_id="acme", mode="base_url",
        endpoint=draw(st.sampled_from(["/chat/completions", "/messages", None, "/v1/\udcff"])),
        provider=draw(st.sampled_from(["openai", "anthropic", "groq", None])), provider_unknown=False,
        model_requested=model, model_actual=model, rule_id=None, rule_name=draw(st.none() | TEXT),
        route_skip_reason=None, passthrough_reason=None, feature=draw(header_text), task=draw(header_text),
        streaming=streaming, status_code=draw(st.none() | st.integers(100, 599)), error_category=None,
        latency_ms=1.0, ttfb_ms=None, request_bytes=len(request), response_bytes=len(response),
        request_body=request, request_encoding=request_encoding,
        response_body=response, response_encoding=response_encoding,
        response_truncated=draw(st.booleans()),
    )  # fmt: skip


def assert_storable(row: dict) -> None:
    """What Store.append_request_logs does with a batch, one row at a time."""
    for name, value in row.items():
        pa.array([value], type=COLUMN_TYPES.get(name, pa.string()))


@SLOW
@given(event=events())
def test_every_event_becomes_a_storable_row(event):
    meter = Meter()
    row = meter.row(event)
    assert_storable(row)
    assert row["request_id"] == "r"


def plain_event(**fields) -> Event:
    """A well-formed event, with `fields` changed."""
    base = dict(
        ts=1_750_000_000.0, request_id="r", org_id="acme", mode="base_url", endpoint="/chat/completions",
        provider="openai", provider_unknown=False, model_requested="gpt-4o", model_actual="gpt-4o",
        rule_id=None, rule_name=None, route_skip_reason=None, passthrough_reason=None, feature=None,
        task=None, streaming=False, status_code=200, error_category=None, latency_ms=1.0, ttfb_ms=None,
        request_bytes=0, response_bytes=0,
    )  # fmt: skip
    return Event(**{**base, **fields})


def test_rows_of_nasty_events_are_written_to_the_real_database(tmp_path):
    huge = b'{"choices":[],"usage":{"prompt_tokens":' + str(2**64).encode() + b',"completion_tokens":1}}'
    nasty = [
        plain_event(request_id="feature", feature="caf\udce9", task="a\rb\x00"),
        plain_event(request_id="model", model_requested="\ud800", model_actual="\ud800"),
        plain_event(request_id="path", endpoint="/v1/\udcff"),
        plain_event(request_id="huge-usage", response_body=huge),
        plain_event(request_id="long-model", model_requested="g" * 100_000, model_actual="g" * 100_000),
    ]
    rows = [Meter().row(e) for e in nasty]
    open_store(tmp_path / "lectr.duckdb").append_request_logs(rows)
    with connect(tmp_path / "lectr.duckdb", read_only=True) as con:
        stored = dict(con.execute("SELECT request_id, feature FROM request_logs").fetchall())
    assert set(stored) == {e.request_id for e in nasty}
    assert stored["feature"] == "caf\ufffd"
    assert rows[3]["prompt_tokens"] is None  # not a count a model produced
    assert rows[4]["price_known"] is False


def test_a_million_spaces_are_counted_not_a_crash():
    """tiktoken's regex panicked (a BaseException) on a run this long, killing the writer."""
    assert tokens.count_text(" " * 1_000_500, "gpt-4o") > 0
    request = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": " " * 1_000_500}]}).encode()
    stream = b'data: {"choices":[{"delta":{"content":"ok"}}]}\n\ndata: [DONE]\n\n'
    row = Meter().row(
        plain_event(
            streaming=True,
            request_bytes=len(request),
            response_bytes=len(stream),
            request_body=request,
            response_body=stream,
        )
    )
    assert row["token_source"] == "tokeniser" and row["prompt_tokens"] > 1000


def test_long_model_names_are_not_looked_up_for_a_price():
    before = pricing.has_price.cache_info().currsize
    assert (
        metering.Meter().row(
            plain_event(
                model_requested="gpt-4o" + "x" * 100_000,
                model_actual="gpt-4o" + "x" * 100_000,
                response_body=b'{"usage":{"prompt_tokens":5,"completion_tokens":1}}',
            )
        )["cost_usd"]
        is None
    )
    assert pricing.has_price.cache_info().currsize == before


# --- the Responses API stream --------------------------------------------------------------

RESPONSES_USAGE = st.fixed_dictionaries(
    {
        "input_tokens": st.integers(0, 10**6),
        "output_tokens": st.integers(0, 10**6),
        "input_tokens_details": st.fixed_dictionaries({"cached_tokens": st.integers(0, 1000)}),
        "output_tokens_details": st.fixed_dictionaries({"reasoning_tokens": st.integers(0, 1000)}),
    }
)
# Events a newer API version may add, or ones Lectr has no use for, audio included (its
# delta is base64, not text): they must change nothing.
UNKNOWN_RESPONSE_EVENTS = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["response.web_search_call.searching", "response.future_event", "keepalive"]),
        "item_id": TEXT,
        "usage": st.none() | st.just({"input_tokens": "many"}),
    }
) | st.fixed_dictionaries({"type": st.just("response.audio.delta"), "delta": st.text("QUJD=", max_size=12)})


@st.composite
def responses_streams(draw) -> tuple[bytes, list[str], dict | None]:
    """A Responses API stream as documented: created, output text deltas, unknown events
    anywhere, and (or not) response.completed with usage. With its deltas and usage."""
    deltas = draw(st.lists(st.text(max_size=8), max_size=6))
    usage = draw(st.none() | RESPONSES_USAGE)
    events: list[dict] = [{"type": "response.created", "response": {"model": "gpt-4o", "usage": None}}]
    events += [{"type": "response.output_text.delta", "delta": d, "output_index": 0} for d in deltas]
    for unknown in draw(st.lists(UNKNOWN_RESPONSE_EVENTS, max_size=3)):
        events.insert(draw(st.integers(1, len(events))), unknown)
    if usage is not None:
        events.append({"type": "response.completed", "response": {"model": "gpt-4o", "usage": usage}})
    data = b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)
    return data, deltas, usage


@FAST
@given(stream=responses_streams())
def test_a_whole_responses_stream_gives_its_usage_and_its_text(stream):
    data, deltas, usage_sent = stream
    assert usage.from_stream(data, "responses") == usage.normalise(usage_sent, "responses")
    assert written.stream_output(data, "responses").all_text() == "".join(deltas)


@FAST
@given(stream=responses_streams(), cut=st.integers(0, 10_000))
def test_a_responses_stream_cut_anywhere_gives_what_it_carried_so_far(stream, cut):
    data, deltas, usage_sent = stream
    cut_data = data[: cut % (len(data) + 1)]
    found = usage.from_stream(cut_data, "responses")
    assert found is None or found == usage.normalise(usage_sent, "responses")  # whole, or not at all
    assert "".join(deltas).startswith(written.stream_output(cut_data, "responses").all_text())
