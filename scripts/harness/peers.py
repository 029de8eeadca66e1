"""The proxies Lectr is measured against, each installed once into .bench/ (never a Lectr dependency):
the LiteLLM proxy (its own virtual environment) and Portkey's open-source AI gateway (npm, Node.js 18+).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import IO

from .processes import ROOT, accepts, listening, stop, wait_until

LITELLM_VERSION = "1.106.2"
LITELLM_VENV = ROOT / ".bench" / "litellm"
LITELLM_MASTER_KEY = "sk-bench-Master-Key-7f3a9c2e41d84b6a"
PORTKEY_VERSION = "1.15.2"
PORTKEY_DIR = ROOT / ".bench" / "portkey"
# The gateway declares "@hono/node-server": "^1.3.3"; from 1.14.2 on, that package keeps a
# fetched response's immutable Headers, and every stream fails with "TypeError: immutable"
# (Portkey-AI/gateway#1389, #1550). 1.14.1 is the last release it works with.
PORTKEY_HONO_NODE_SERVER = "1.14.1"
# start-server.js takes only --port and --headless and listens on every interface: this
# preload makes it listen on loopback only.
PORTKEY_LOOPBACK = """import net from "node:net";
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (port, ...rest) {
  if (typeof port === "number" && rest[0] === undefined) rest[0] = "127.0.0.1";
  return listen.call(this, port, ...rest);
};
"""


def litellm_about() -> dict[str, object]:
    """What a report says of the LiteLLM proxy it measured."""
    return {"version": LITELLM_VERSION, "database_logging": False}


def portkey_about() -> dict[str, object]:
    """What a report says of the Portkey gateway it measured."""
    return {"version": PORTKEY_VERSION, "hono_node_server": PORTKEY_HONO_NODE_SERVER, "node": node_version()}


def ensure_litellm() -> Path:
    exe = LITELLM_VENV / "bin" / "litellm"
    if not exe.exists():
        print(f"Installing litellm[proxy]=={LITELLM_VERSION} into {LITELLM_VENV} (once) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
        subprocess.run(
            [str(LITELLM_VENV / "bin" / "pip"), "install", "--quiet", f"litellm[proxy]=={LITELLM_VERSION}"], check=True
        )
    return exe


def start_litellm(port: int, models: dict[str, str], work: Path, log: IO) -> subprocess.Popen:
    """The LiteLLM proxy on 127.0.0.1:port, one process, master key set, no database (no spend logs),
    serving each model name at its OpenAI-compatible base URL; returns once it listens."""
    config = work / "litellm.yaml"
    config.write_text(
        json.dumps(
            {
                "model_list": [
                    {
                        "model_name": name,
                        "litellm_params": {"model": f"openai/{name}", "api_base": base, "api_key": "sk-sim"},
                    }
                    for name, base in models.items()
                ],
                "litellm_settings": {"telemetry": False},
                "general_settings": {"master_key": LITELLM_MASTER_KEY},
            }
        )
    )
    env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_TELEMETRY="False")
    args = [str(ensure_litellm()), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen([*args, "--num_workers", "1"], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=work)
    try:
        wait_until(lambda: accepts("127.0.0.1", port), timeout=120, what="the LiteLLM proxy")
    except BaseException:
        stop(proc)
        raise
    return proc


def ensure_portkey() -> Path:
    """@portkey-ai/gateway in .bench/portkey (npm, once), with the one dependency it needs pinned."""
    modules = PORTKEY_DIR / "node_modules"
    entry = modules / "@portkey-ai" / "gateway" / "build" / "start-server.js"
    if installed_version(modules / "@portkey-ai" / "gateway") != PORTKEY_VERSION or (
        installed_version(modules / "@hono" / "node-server") != PORTKEY_HONO_NODE_SERVER
    ):
        if shutil.which("npm") is None or shutil.which("node") is None:
            raise RuntimeError("E needs Node.js 18+ and npm (or run with --no-portkey)")
        print(f"Installing @portkey-ai/gateway@{PORTKEY_VERSION} into {PORTKEY_DIR} (once) ...", flush=True)
        PORTKEY_DIR.mkdir(parents=True, exist_ok=True)
        package = {
            "private": True,
            "dependencies": {"@portkey-ai/gateway": PORTKEY_VERSION},
            "overrides": {"@hono/node-server": PORTKEY_HONO_NODE_SERVER},
        }
        (PORTKEY_DIR / "package.json").write_text(json.dumps(package, indent=2) + "\n")
        # Its postinstall (patch-package) has nothing to patch in the published package.
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--omit=dev", "--ignore-scripts", "--loglevel=error"],
            cwd=PORTKEY_DIR,
            check=True,
        )
    (PORTKEY_DIR / "loopback.mjs").write_text(PORTKEY_LOOPBACK)
    return entry


def start_portkey(port: int, work: Path, log: IO) -> subprocess.Popen:
    """Portkey's gateway on 127.0.0.1:port, one Node.js process, no logging backend; returns once it listens.
    It routes by headers (x-portkey-provider, x-portkey-custom-host) and passes the client's Authorization on."""
    entry = ensure_portkey()
    env = {k: v for k, v in os.environ.items() if k not in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")}
    env["TRUSTED_CUSTOM_HOSTS"] = "127.0.0.1"  # its default list has it too; said here for the reader
    proc = subprocess.Popen(
        ["node", "--import", str(PORTKEY_DIR / "loopback.mjs"), str(entry), f"--port={port}", "--headless"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=work,
    )
    return listening(proc, port, "the Portkey gateway")


def installed_version(package: Path) -> str | None:
    try:
        return json.loads((package / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


def node_version() -> str | None:
    found = shutil.which("node")
    return subprocess.run([found, "--version"], capture_output=True, text=True).stdout.strip() if found else None
