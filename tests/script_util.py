"""Helpers for the tests of `scripts/` (GPU experiments kept runnable without a GPU): load a
script as a module, and run a test file's compile step in a fresh interpreter."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_script(name: str):
    """`scripts/<name>.py` as a module (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compile_in_fresh_process(test_file: str, *args) -> dict:
    """Run `python test_file JSON(args)` without TRITON_INTERPRET and return the JSON its last
    line prints (the test file's `__main__` compiles for a GPU target and reports). Compiling
    for a GPU inside a pytest worker that had run other tests first failed once (session 23:
    `C // BC` on a kernel argument, "block_argument has no attribute dtype") and passed
    alone, so the compile gets a process of its own."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, test_file, json.dumps(args)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
