"""Runs the Node scripts of ``tests/node/`` (the official ``openai`` npm package) against a
running gateway: the test's input as JSON in argv, the script's answer as JSON on stdout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.gateway import Gateway

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
NODE = shutil.which("node")

#: the whole module skips on a machine without node; with node, a missing install is a failure
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed: no Node SDK tests")


def run_node(script: str, gw: Gateway, timeout_s: float = 120, **given: Any) -> Any:
    if not (NODE_DIR / "node_modules" / "openai").is_dir():
        pytest.fail("tests/node/node_modules is missing: run `make setup` (npm ci)")
    assert NODE is not None
    env = os.environ | {"MINITOOLAI_BASE_URL": gw.url + "/v1", "MINITOOLAI_API_KEY": gw.api_key}
    done = subprocess.run(
        [NODE, str(NODE_DIR / script), json.dumps(given)],
        cwd=NODE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    assert done.returncode == 0, f"node {script} failed:\n{done.stderr}"
    return json.loads(done.stdout)
