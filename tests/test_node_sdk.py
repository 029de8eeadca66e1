"""base_url mode through a real mitmdump, driven by the official Node SDK (npm `openai`).

tests/node/sdk_client.mjs makes the request; `bash scripts/setup.sh test` installs the SDK
and the Node it needs (tests/node/package.json) into tests/node/node_modules.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from helpers import ROOT, set_rules, wait_rows

NODE_DIR = ROOT / "tests" / "node"
NODE = NODE_DIR / "node_modules" / ".bin" / "node"
SDK_VERSION = json.loads((NODE_DIR / "package.json").read_text())["dependencies"]["openai"]

pytestmark = pytest.mark.skipif(
    not (NODE.exists() and (NODE_DIR / "node_modules" / "openai" / "package.json").exists()),
    reason="the Node SDK is not installed in tests/node/node_modules: run `bash scripts/setup.sh test` (needs npm)",
)


def node_client(lectr, *args: str) -> dict:
    """Run the Node client against the proxy; its JSON result."""
    # Neither a proxy nor an OPENAI_* setting from the developer's shell may change where it goes.
    env = {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY") and not k.startswith("OPENAI_")}
    done = subprocess.run(
        [str(NODE), str(NODE_DIR / "sdk_client.mjs"), "--base-url", f"{lectr.url}/v1", "--key", lectr.key, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=NODE_DIR,
    )
    assert done.returncode == 0, f"node client failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["sdk"] == SDK_VERSION
    return result


def only(sim) -> dict:
    received = sim.received()
    assert len(received) == 1, received
    return received[0]


def assert_sent_by_the_node_sdk(got: dict, lectr) -> None:
    assert got["headers"]["user-agent"] == f"OpenAI/JS {SDK_VERSION}"
    assert got["headers"]["authorization"] == "Bearer sk-client-openai"
    assert not [h for h in got["headers"] if h.startswith("x-lectr")]
    assert lectr.key not in json.dumps(got)


@pytest.fixture(autouse=True)
def no_rules(lectr):
    set_rules(lectr, "rules: []\n")


def test_node_sdk_non_streaming(lectr, sim):
    result = node_client(lectr, "--feature", "node-plain", "--task", "classification")
    assert result["content"].startswith("Lectr routes each request")
    assert result["model"] == "gpt-4o" and result["usage"]["completion_tokens"] == 8
    got = only(sim)
    assert got["path"] == "/v1/chat/completions" and got["body"]["model"] == "gpt-4o"
    assert "stream" not in got["body"]
    assert_sent_by_the_node_sdk(got, lectr)
    (row,) = wait_rows(lectr.db_path, 1, "feature = 'node-plain'")
    assert (row["org_id"], row["mode"], row["endpoint"], row["provider"]) == (
        "acme",
        "base_url",
        "/chat/completions",
        "openai",
    )
    assert (row["model_requested"], row["model_actual"], row["rule_id"]) == ("gpt-4o", "gpt-4o", None)
    assert (row["task"], row["streaming"], row["status_code"]) == ("classification", False, 200)
    assert (row["prompt_tokens"], row["completion_tokens"]) == (result["usage"]["prompt_tokens"], 8)
    assert row["token_source"] == "provider"


def test_node_sdk_streaming(lectr, sim):
    result = node_client(lectr, "--stream", "--feature", "node-stream")
    assert result["content"].startswith("Lectr routes each request")
    # The role chunk, eight words, the finish chunk and the usage chunk, each as its own event.
    assert result["chunks"] == 11 and result["usage"]["completion_tokens"] == 8
    got = only(sim)
    assert got["body"]["stream"] is True and got["body"]["stream_options"] == {"include_usage": True}
    assert_sent_by_the_node_sdk(got, lectr)
    (row,) = wait_rows(lectr.db_path, 1, "feature = 'node-stream'")
    assert (row["streaming"], row["status_code"], row["token_source"]) == (True, 200, "provider")
    assert (row["prompt_tokens"], row["completion_tokens"]) == (result["usage"]["prompt_tokens"], 8)


def test_node_sdk_request_routed_by_a_rule(lectr, sim):
    set_rules(
        lectr,
        """
rules:
  - name: node classifiers to mini
    id: node-mini
    priority: 1
    match: {feature: node-routed, model: gpt-4o}
    target: {model: gpt-4o-mini}
""",
    )
    result = node_client(lectr, "--stream", "--feature", "node-routed", "--task", "classification")
    assert result["model"] == "gpt-4o-mini" and result["content"].startswith("Lectr routes")
    got = only(sim)
    assert got["body"]["model"] == "gpt-4o-mini"
    assert_sent_by_the_node_sdk(got, lectr)
    (row,) = wait_rows(lectr.db_path, 1, "feature = 'node-routed'")
    assert (row["model_requested"], row["model_actual"]) == ("gpt-4o", "gpt-4o-mini")
    assert (row["rule_id"], row["rule_name"]) == ("node-mini", "node classifiers to mini")
    assert (row["prompt_tokens"], row["completion_tokens"]) == (result["usage"]["prompt_tokens"], 8)
