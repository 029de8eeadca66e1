"""What a tokeniser counts when the provider reported no usage (lectr.estimate)."""

import pytest

from lectr.estimate import body_text, message_count, prompt_texts


def test_prompt_texts_openai_string_and_parts():
    body = {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Hello"}, {"type": "image_url", "image_url": {}}]},
        ],
    }
    assert prompt_texts(body, "openai") == ["Be brief.", "Hello"]
    assert message_count(body) == 2


def test_prompt_texts_anthropic_system_and_messages():
    body = {
        "system": [{"type": "text", "text": "You are terse."}],
        "messages": [
            {"role": "user", "content": "Question"},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "42"}]},
        ],
    }
    assert prompt_texts(body, "anthropic") == ["You are terse.", "Question", "42"]


def test_prompt_texts_embeddings_input():
    assert prompt_texts({"model": "text-embedding-3-small", "input": ["a", "b"]}, "openai") == ["a", "b"]


@pytest.mark.parametrize("garbage", [None, "text", 42, [], {"messages": 5}])
def test_garbage_gives_nothing_to_count(garbage):
    assert prompt_texts(garbage, "openai") == []
    assert message_count(garbage) == 0
    assert body_text(garbage, "responses") == ""


def test_responses_body_text_is_output_text_arguments_and_summaries():
    body = {
        "output": [
            {"type": "reasoning", "summary": [{"type": "summary_text", "text": "thought "}]},
            {"type": "function_call", "name": "f", "arguments": '{"a":1}'},
            {"type": "message", "content": [{"type": "output_text", "text": "Hi"}]},
        ]
    }
    assert body_text(body, "responses") == 'thought {"a":1}Hi'
