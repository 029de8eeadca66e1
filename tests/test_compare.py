"""Shadow experiments' answers and comparisons: known answers worked out by hand.

The answers are read from bodies and streams shaped as each API sends them; the
comparisons are checked against scores computed here, and on odd inputs they neither
raise nor leave 0..1.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lectr.shadow import compare as cmp
from lectr.shadow.answers import Answer, from_body, from_stream
from lectr.shadow.compare import Comparison, compare, fields, label, text, tool_calls

PROPERTY = settings(max_examples=80, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def sse(*events: dict, named: bool = False, done: bool = False) -> bytes:
    """A stream as sent: one `data:` line per event, `event:` lines when named (Anthropic, Responses)."""
    out = b""
    for event in events:
        head = f"event: {event['type']}\n".encode() if named else b""
        out += head + b"data: " + json.dumps(event).encode() + b"\n\n"
    return out + (b"data: [DONE]\n\n" if done else b"")


# --- labels ---


@pytest.mark.parametrize(
    "current, candidate",
    [
        ("Billing.", "billing"),
        ('"Billing"\n', " billing! "),
        ('{"label": "Billing"}', "`billing`"),
        ('```json\n{"category": "Billing"}\n```', "Billing"),
        ("Technical   Support", "technical support,"),
        ("", ""),
    ],
)
def test_labels_that_agree_once_normalised(current, candidate):
    assert label(current, candidate) == Comparison("label", 1.0, True)


@pytest.mark.parametrize(
    "current, candidate",
    [
        ("billing", "technical"),
        ("Label: billing", "billing"),  # the prefix is kept: documented
        ('{"label": "Billing", "confidence": "high"}', "billing"),  # two values: not a label
        ("billing", ""),
    ],
)
def test_labels_that_disagree(current, candidate):
    assert label(current, candidate) == Comparison("label", 0.0, False)


# --- extracted fields ---

EXTRACTED = {"name": "Ada", "city": "Paris", "amount": 3, "date": "2024-01-02"}


def test_fields_equal_after_normalisation_agree():
    candidate = {"name": "Ada", "city": "paris ", "amount": 3.0, "date": "2024-01-02"}
    assert fields(json.dumps(EXTRACTED), json.dumps(candidate)) == Comparison("fields", 1.0, True)


def test_two_of_four_fields_changed_is_half_and_disagrees():
    candidate = dict(EXTRACTED, city="London", amount=4)
    assert fields(json.dumps(EXTRACTED), json.dumps(candidate)) == Comparison("fields", 0.5, False)


def test_one_of_ten_fields_changed_is_at_the_threshold_and_agrees():
    current = {f"f{i}": i for i in range(10)}
    assert fields(json.dumps(current), json.dumps(dict(current, f9="nine"))) == Comparison("fields", 0.9, True)
    assert cmp.FIELDS_AGREE == 0.9


def test_nested_fields_are_compared_by_path_over_both_answers():
    current = {
        "customer": {"name": "Ada", "address": {"city": "Paris"}},
        "items": [{"name": "pen", "qty": 2}, {"name": "ink", "qty": 1}],
    }
    candidate = {
        "customer": {"name": "ADA", "address": {"city": "Paris"}, "email": "ada@example.com"},
        "items": [{"name": "pen", "qty": 2}, {"name": "ink", "qty": 3}],
    }
    # 7 paths over both (customer.email only in the candidate); items[1].qty differs: 5 equal.
    result = fields(json.dumps(current), json.dumps(candidate))
    assert result.kind == "fields"
    assert result.score == pytest.approx(5 / 7)
    assert result.agreed is False


def test_a_fenced_candidate_is_read_as_json():
    candidate = "Here it is:\n```json\n" + json.dumps(EXTRACTED, indent=2) + "\n```\n"
    assert fields(json.dumps(EXTRACTED), candidate) == Comparison("fields", 1.0, True)


def test_a_candidate_that_is_not_json_scores_zero():
    assert fields(json.dumps(EXTRACTED), "Ada lives in Paris.") == Comparison("fields", 0.0, False)


def test_a_current_answer_that_is_not_json_is_compared_as_text():
    assert fields("Ada lives in Paris", "ada lives in paris") == Comparison("text", 1.0, True, 1.0)
    assert fields("42", '{"a": 42}').kind == "text"  # a JSON number is not an extraction


@pytest.mark.parametrize(
    "current, candidate, score",
    [
        ("{}", "{}", 1.0),
        ("{}", "[]", 0.0),
        ('{"paid": true}', '{"paid": 1}', 0.0),  # a bool is not a number
        ('{"amount": 3}', '{"amount": "3"}', 0.0),  # nor a string
        ('{"a": null}', '{"a": null}', 1.0),
        ('{"a": 1}', '{"b": 1}', 0.0),
        ('[{"n": "x"}, {"n": "y"}]', '[{"n": "X"}]', 0.5),
    ],
)
def test_field_values_by_kind(current, candidate, score):
    assert fields(current, candidate).score == score


# --- text ---


def test_identical_texts_score_one():
    assert text("The cat sat on the mat.", "the cat, sat on the MAT") == Comparison("text", 1.0, True, 1.0)


def test_rouge_l_worked_by_hand():
    # LCS "the cat on the mat" = 5 words of 6 each: P = R = 5/6, F1 = 5/6.
    result = text("the cat sat on the mat", "the cat lay on the mat")
    assert result.score == pytest.approx(0.8333, abs=1e-4)
    assert (result.kind, result.agreed, result.length_ratio) == ("text", True, 1.0)


def test_rouge_l_counts_words_in_order():
    assert text("a b c d", "d c b a").score == pytest.approx(2 * 1 / 8)  # LCS 1 word
    assert text("ab c", "a bc").score == 0.0  # words, not characters


def test_unrelated_texts_disagree():
    result = text("The invoice was paid on time", "Your password has been reset")
    assert (result.score, result.agreed) == (0.0, False)


WORDS = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen".split()


def test_a_candidate_under_half_as_long_disagrees_though_its_f1_passes():
    current = " ".join(WORDS + ["w" + str(i) for i in range(5)])  # 20 words
    result = text(current, " ".join(WORDS[:9]))  # its first 9: P = 1, R = 9/20, F1 = 18/29
    assert result.score == pytest.approx(18 / 29)
    assert result.score >= cmp.TEXT_AGREES
    assert result.length_ratio == pytest.approx(0.45)
    assert result.agreed is False


def test_a_candidate_padded_past_twice_the_length_disagrees_though_its_f1_passes():
    current = " ".join(WORDS[:10])
    result = text(current, current + " " + " ".join(f"pad{i}" for i in range(12)))  # 22 words, F1 = 20/32
    assert result.score == pytest.approx(0.625)
    assert result.length_ratio == pytest.approx(2.2)
    assert result.agreed is False


def test_half_the_length_is_inside_the_ratio():
    result = text(" ".join(WORDS[:10]), " ".join(WORDS[:5]))  # F1 = 10/15
    assert (result.score, result.length_ratio, result.agreed) == (pytest.approx(2 / 3), 0.5, True)


def test_empty_texts():
    assert text("", "  ...  ") == Comparison("text", 1.0, True, None)
    assert text("", "something") == Comparison("text", 0.0, False, None)
    assert text("something", "") == Comparison("text", 0.0, False, 0.0)


# --- tool calls ---


def test_the_same_call_with_arguments_in_another_order_agrees():
    current = [("get_weather", '{"city": "Paris", "unit": "C"}')]
    candidate = [("get_weather", '{ "unit":"c","city":"Paris" }')]
    assert tool_calls(current, candidate) == Comparison("tool_calls", 1.0, True)


@pytest.mark.parametrize(
    "candidate",
    [
        [("get_time", '{"city": "Paris", "unit": "C"}')],  # another function
        [("get_weather", '{"city": "Lyon", "unit": "C"}')],  # other arguments
        [("get_weather", '{"city": "Paris"}')],  # one argument missing
    ],
)
def test_another_call_disagrees(candidate):
    current = [("get_weather", '{"city": "Paris", "unit": "C"}')]
    assert tool_calls(current, candidate) == Comparison("tool_calls", 0.0, False)


def test_calls_are_paired_in_order_over_the_longer_list():
    current = [("search", '{"q": "a"}'), ("fetch", '{"id": 1}')]
    assert tool_calls(current, current[:1]).score == 0.5
    assert tool_calls(current, current[::-1]).score == 0.0
    assert tool_calls(current, current + [("fetch", '{"id": 2}')]).score == pytest.approx(2 / 3)


def test_call_arguments_that_are_not_json_or_are_empty():
    assert tool_calls([("f", " not json ")], [("f", "not json")]).agreed is True
    assert tool_calls([("f", "not json")], [("f", "other")]).agreed is False
    assert tool_calls([("f", "")], [("f", "{}")]).agreed is True  # no arguments is an empty object
    assert tool_calls([("f", '{"id": 1}')], [("f", '{"id": 1.0}')]).agreed is True
    assert tool_calls([], []) == Comparison("tool_calls", 1.0, True)


# --- compare: which comparison for which task ---


@pytest.mark.parametrize(
    "task, kind",
    [
        ("classification", "label"),
        ("Classification", "label"),
        ("extraction", "fields"),
        ("summarisation", "text"),
        ("generation", "text"),
        ("reasoning", "text"),
        (None, "text"),
        ("something new", "text"),
    ],
)
def test_compare_picks_the_comparison_by_task(task, kind):
    assert compare(task, Answer('{"a": "Billing"}'), Answer('{"a": "billing"}')).kind == kind


def test_compare_uses_tool_calls_when_either_answer_made_one():
    with_call = Answer("", (("f", "{}"),))
    assert compare("classification", with_call, Answer("billing")) == Comparison("tool_calls", 0.0, False)
    assert compare("extraction", Answer("x"), with_call).kind == "tool_calls"
    assert compare(None, with_call, Answer("other text", (("f", "{ }"),))).agreed is True


# --- answers from bodies ---


def test_openai_body_first_choice_without_reasoning():
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Paris.", "reasoning_content": "The capital is..."},
                "finish_reason": "stop",
            },
            {"index": 1, "message": {"role": "assistant", "content": "Lyon."}, "finish_reason": "stop"},
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13},
    }
    assert from_body(body, "openai") == Answer("Paris.")


def test_openai_body_with_tool_calls_and_content_parts():
    body = {
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
                    ],
                },
            }
        ]
    }
    assert from_body(body, "openai") == Answer("", (("get_weather", "{}"),))
    parts = [{"type": "thinking", "thinking": [{"type": "text", "text": "hmm"}]}, {"type": "text", "text": "Paris."}]
    assert from_body({"choices": [{"message": {"content": parts}}]}, "openai") == Answer("Paris.")


ANTHROPIC_BODY = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "content": [
        {"type": "thinking", "thinking": "The user wants the weather.", "signature": "sig"},
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
    ],
    "stop_reason": "tool_use",
}


def test_anthropic_body_without_thinking():
    assert from_body(ANTHROPIC_BODY, "anthropic") == Answer("Let me check.", (("get_weather", '{"city": "Paris"}'),))


RESPONSES_BODY = {
    "id": "resp_1",
    "object": "response",
    "status": "completed",
    "output": [
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Thinking it over."}]},
        {
            "type": "message",
            "id": "msg_1",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Paris.", "annotations": []}],
        },
        {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_time", "arguments": '{"tz": "CET"}'},
    ],
}


def test_responses_body_without_reasoning():
    assert from_body(RESPONSES_BODY, "responses") == Answer("Paris.", (("get_time", '{"tz": "CET"}'),))


@pytest.mark.parametrize("style", ["openai", "anthropic", "responses"])
@pytest.mark.parametrize(
    "body",
    [None, [], "text", 3, {}, {"choices": "x"}, {"choices": [None]}, {"choices": [{"message": "x"}]}, {"content": 3}],
)
def test_malformed_bodies_give_an_empty_answer(body, style):
    assert from_body(body, style) == Answer("")


# --- answers from streams ---


def _chunk(delta: dict, index: int = 0) -> dict:
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [{"index": index, "delta": delta}]}


def test_openai_stream_content_without_reasoning():
    stream = sse(
        _chunk({"role": "assistant", "content": ""}),
        _chunk({"reasoning_content": "The capital"}),
        _chunk({"content": "Par"}),
        _chunk({"content": "Lyon"}, index=1),  # the second choice is not the answer
        _chunk({"content": "is."}),
        {"id": "chatcmpl-1", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}},
        done=True,
    )
    assert from_stream(stream, "openai") == Answer("Paris.")


def test_openai_stream_tool_calls_split_over_chunks():
    def call(index, **fields):
        return _chunk({"tool_calls": [dict(index=index, **fields)]})

    stream = sse(
        _chunk({"role": "assistant", "content": None}),
        call(0, id="call_1", type="function", function={"name": "get_weather", "arguments": ""}),
        call(0, function={"arguments": '{"ci'}),
        call(0, function={"arguments": 'ty": "Paris"}'}),
        call(1, id="call_2", type="function", function={"name": "get_time", "arguments": "{}"}),
        call(1, function={"name": "get_time", "arguments": ""}),  # a name repeated by some providers
        done=True,
    )
    assert from_stream(stream, "openai") == Answer("", (("get_weather", '{"city": "Paris"}'), ("get_time", "{}")))


ANTHROPIC_STREAM = sse(
    {"type": "message_start", "message": {"id": "msg_1", "role": "assistant", "content": [], "usage": {}}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "The user wants"}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "sig"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Let me "}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "check."}},
    {"type": "content_block_stop", "index": 1},
    {
        "type": "content_block_start",
        "index": 2,
        "content_block": {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}},
    },
    {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": ""}},
    {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": '{"city": '}},
    {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": '"Paris"}'}},
    {"type": "content_block_stop", "index": 2},
    {
        "type": "content_block_start",
        "index": 3,
        "content_block": {"type": "tool_use", "id": "toolu_2", "name": "now", "input": {}},
    },
    {"type": "content_block_stop", "index": 3},
    {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 30}},
    {"type": "message_stop"},
    named=True,
)


def test_anthropic_stream_text_and_tool_use_without_thinking():
    expected = Answer("Let me check.", (("get_weather", '{"city": "Paris"}'), ("now", "{}")))
    assert from_stream(ANTHROPIC_STREAM, "anthropic") == expected


def test_an_anthropic_body_and_stream_of_the_same_answer_compare_equal():
    body = dict(ANTHROPIC_BODY, content=ANTHROPIC_BODY["content"] + [{"type": "tool_use", "name": "now", "input": {}}])
    assert compare(None, from_body(body, "anthropic"), from_stream(ANTHROPIC_STREAM, "anthropic")).agreed is True


def _responses_events(completed: bool) -> list[dict]:
    events = [
        {"type": "response.created", "response": {"id": "resp_1", "status": "in_progress", "output": []}},
        {"type": "response.output_item.added", "output_index": 0, "item": {"type": "reasoning", "id": "rs_1"}},
        {"type": "response.reasoning_summary_text.delta", "output_index": 0, "delta": "Thinking it over."},
        {"type": "response.output_item.added", "output_index": 1, "item": {"type": "message", "id": "msg_1"}},
        {"type": "response.output_text.delta", "output_index": 1, "content_index": 0, "delta": "Par"},
        {"type": "response.output_text.delta", "output_index": 1, "content_index": 0, "delta": "is."},
        {"type": "response.output_text.done", "output_index": 1, "content_index": 0, "text": "Paris."},
        {
            "type": "response.output_item.added",
            "output_index": 2,
            "item": {"type": "function_call", "name": "get_time", "arguments": ""},
        },
        {"type": "response.function_call_arguments.delta", "output_index": 2, "delta": '{"tz": '},
        {"type": "response.function_call_arguments.delta", "output_index": 2, "delta": '"CET"}'},
    ]
    if completed:
        events.append({"type": "response.completed", "response": RESPONSES_BODY})
    return events


def test_responses_stream_read_from_its_completed_response():
    expected = Answer("Paris.", (("get_time", '{"tz": "CET"}'),))
    assert from_stream(sse(*_responses_events(completed=True), named=True), "responses") == expected
    # The completed response is what is read, not the deltas: a different one gives a different answer.
    other = dict(RESPONSES_BODY, output=[{"type": "message", "content": [{"type": "output_text", "text": "Lyon."}]}])
    events = _responses_events(completed=False) + [{"type": "response.completed", "response": other}]
    assert from_stream(sse(*events, named=True), "responses") == Answer("Lyon.")


def test_responses_stream_without_completed_falls_back_to_the_deltas():
    expected = Answer("Paris.", (("get_time", '{"tz": "CET"}'),))
    assert from_stream(sse(*_responses_events(completed=False), named=True), "responses") == expected


@pytest.mark.parametrize("style", ["openai", "anthropic", "responses"])
@pytest.mark.parametrize(
    "data",
    [b"", b"data: [DONE]\n\n", b"not a stream", b'data: {"choices": 3, "type": 4, "delta": 5}\n\n', b"data: [1]\n\n"],
)
def test_malformed_streams_give_an_empty_answer(data, style):
    assert from_stream(data, style) == Answer("")


# --- odd inputs: never an exception, always a score in 0..1 ---

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)
ODD_TEXT = st.one_of(st.text(), JSON.map(json.dumps), st.sampled_from(["```", "```json\n[", "{" * 5000, "9" * 5000]))


@PROPERTY
@given(ODD_TEXT, ODD_TEXT)
def test_comparisons_never_raise_and_stay_in_range(current, candidate):
    for result in (label(current, candidate), fields(current, candidate), text(current, candidate)):
        assert 0.0 <= result.score <= 1.0
        assert result.agreed is (result.score == 1.0) or result.kind != "label"
    calls = tool_calls([("f", current)], [("f", candidate), ("g", current)])
    assert 0.0 <= calls.score <= 0.5


@PROPERTY
@given(JSON, st.sampled_from(["openai", "anthropic", "responses", "other"]))
def test_answers_from_any_json_never_raise(body, style):
    assert isinstance(from_body(body, style), Answer)
    assert isinstance(from_stream(b"data: " + json.dumps(body).encode() + b"\n\n", style), Answer)


def test_a_deeply_nested_extraction_does_not_overflow():
    deep = "[" * 5000 + "]" * 5000  # parsed by json, past Python's recursion limit to walk
    assert fields(deep, deep) == Comparison("fields", 1.0, True)
    assert fields(deep, "[" * 4999 + "{}" + "]" * 4999) == Comparison("fields", 0.0, False)
