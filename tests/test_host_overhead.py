"""scripts/host_overhead.py: madc's host time per call with the kernels stubbed, forward and
forward+backward (what tells host-bound timings from device-bound ones: docs/triton.md)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from script_util import ROOT


@pytest.mark.parametrize("flags,line", [
    ([], "us per scan call"), (["--backward"], "us per forward+backward"),
    (["ops/selective_ssm.scan", "--module", "--dims", "D=64,N=16"], "us per module call")])
def test_host_overhead_times_a_call(flags, line):
    env = dict(os.environ, TRITON_INTERPRET="1")
    out = subprocess.run([sys.executable, "scripts/host_overhead.py", "--calls", "20", *flags],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    first = out.stdout.splitlines()[0]
    assert line in first and float(first.split()[0]) > 0
    assert "function calls" in out.stdout  # the profile follows
