"""Which failures of a routed request call for the original (lectr.proxy.fallbacks)."""

import json

import pytest

from lectr.proxy.fallbacks import MESSAGE_MAX, failure, may_fall_back


def body(value: object) -> bytes:
    return json.dumps(value).encode()


OPENAI_404 = body(
    {
        "error": {
            "message": "The model `gpt-4o-typo` does not exist or you do not have access to it.",
            "type": "invalid_request_error",
            "param": None,
            "code": "model_not_found",
        }
    }
)


@pytest.mark.parametrize(
    "status, content, expected",
    [
        (
            404,
            OPENAI_404,
            "404 model_not_found: The model `gpt-4o-typo` does not exist or you do not have access to it.",
        ),
        (
            404,
            body({"type": "error", "error": {"type": "not_found_error", "message": "model: claude-x"}}),
            "404 not_found_error: model: claude-x",
        ),
        (
            400,
            body(
                {"error": {"message": "The model `llama2-70b` has been decommissioned", "code": "model_decommissioned"}}
            ),
            "400 model_decommissioned: The model `llama2-70b` has been decommissioned",
        ),
        (
            400,
            body(
                {
                    "error": {
                        "message": "This model's maximum context length is 8192 tokens",
                        "code": "context_length_exceeded",
                    }
                }
            ),
            "400 context_length_exceeded: This model's maximum context length is 8192 tokens",
        ),
        (
            400,
            body([{"error": {"code": 400, "message": "models/gemini-9 is not found", "status": "NOT_FOUND"}}]),
            "400 NOT_FOUND: models/gemini-9 is not found",
        ),
        (
            401,
            body({"error": {"message": "Invalid API Key", "code": "invalid_api_key"}}),
            "401 invalid_api_key: Invalid API Key",
        ),
        (403, b"", "403"),
        (
            429,
            body({"error": {"message": "Rate limit reached", "type": "rate_limit_exceeded"}}),
            "429 rate_limit_exceeded: Rate limit reached",
        ),
        (
            529,
            body({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
            "529 overloaded_error: Overloaded",
        ),
        (502, b"<html>Bad Gateway</html>", "502 <html>Bad Gateway</html>"),
    ],
)
def test_failures_a_rule_may_have_caused_or_the_original_may_not_share(status, content, expected):
    assert may_fall_back(status)
    assert failure(status, content) == expected


@pytest.mark.parametrize(
    "status, content",
    [
        (400, body({"error": {"message": "Invalid value for 'temperature': 3", "code": "invalid_value"}})),
        (400, b"not json"),
        (413, body({"error": {"message": "model request too large"}})),
        (422, body({"detail": "model"})),
        (200, b""),
        (302, b""),
    ],
)
def test_errors_the_original_would_share_go_to_the_client(status, content):
    assert failure(status, content) is None


def test_a_long_message_is_cut_for_the_log_and_the_row():
    long = body({"error": {"message": "model " + "x" * 5000, "code": "model_not_found"}})
    assert len(failure(404, long)) <= len("404 model_not_found: ") + MESSAGE_MAX
