"""Run the CLI in a fresh interpreter and report which watched modules it imported (cold-start tests)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence

_WRAPPER = """
import json, sys
watched = json.loads(sys.argv[2])
sys.argv = ["medseg", *json.loads(sys.argv[1])]
from medseg.cli.main import run
try:
    run()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print(json.dumps({"code": code, "loaded": [m for m in watched if m in sys.modules]}), file=sys.stderr)
"""


def run_cli(args: Sequence[str], watched: Sequence[str], env: dict[str, str] | None = None,
            timeout: float = 180) -> dict:
    """``{"code": exit code, "loaded": the watched modules in sys.modules after the command}``."""
    env = {**os.environ, "PYTHONIOENCODING": "utf-8", **(env or {})}   # rich tables print whatever the locale
    done = subprocess.run([sys.executable, "-c", _WRAPPER, json.dumps(list(args)), json.dumps(list(watched))],
                          capture_output=True, timeout=timeout, env=env)
    return json.loads(done.stderr.decode("utf-8").strip().splitlines()[-1])
