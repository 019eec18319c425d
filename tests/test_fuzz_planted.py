"""The planted bug: an off-by-one in the carry of an emitted chunked kernel must be caught by
`madc fuzz`, shrunk, and written as a repro script that fails on its own.

The emitted package is written to a temporary directory, its `chunked.py` patched so the
state carried into the next chunk (and returned as the final state) is the one *before* the
chunk's last token, and fuzzed through `madc fuzz --module` (the backend module's `scan` entry
point), so no madc internals are monkeypatched. The same package unpatched must pass, which
shows the failure comes from the planted bug and nothing else.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from madc.codegen.package import emit_package, write_package
from madc.frontend import load_spec
from madc.fuzz import add_fuzz_arguments, main_fuzz

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "ops" / "hgrn.scan"
CARRY = "h = {name: value[:, -1] for name, value in seq.items()}"
# The state carried out of a chunk skips the chunk's last step (it is the state one token
# earlier); single-token chunks are left alone so every shape still runs.
PLANTED = "h = {name: value[:, -2 if value.shape[1] > 1 else -1] for name, value in seq.items()}"


def _emit(directory: Path, plant: bool) -> Path:
    package = write_package(emit_package(load_spec(str(SPEC)), backends=("chunked",)),
                            directory / "hgrn")
    chunked = package / "chunked.py"
    if plant:
        text = chunked.read_text()
        assert text.count(CARRY) == 1, "the chunked template changed: update the planted bug"
        chunked.write_text(text.replace(CARRY, PLANTED))
    return chunked


def _fuzz(module: Path, out: Path, examples: int) -> int:
    parser = argparse.ArgumentParser()
    add_fuzz_arguments(parser)
    args = parser.parse_args([str(SPEC), "--module", str(module), "--examples", str(examples),
                              "--seed", "1", "--device", "cpu", "--dtype", "fp32",
                              "--max-length", "40", "--shrink-seconds", "30",
                              "--out", str(out)])
    return main_fuzz(args)


def test_planted_carry_bug_is_caught_and_repro_fails_standalone(tmp_path, capsys):
    module = _emit(tmp_path / "planted", plant=True)
    rc = _fuzz(module, tmp_path / "out", examples=25)
    printed = capsys.readouterr().out
    assert rc == 1, printed
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["failures"] >= 1
    assert summary["max_error"]["fp32"]["state"] in ("inf",) or \
        summary["max_error"]["fp32"]["state"] > 1e-2
    shrunk = json.loads(summary["shrunk_case"])
    # Shrinking keeps what the bug needs (two tokens in a chunk) and drops the rest.
    assert shrunk["length"] <= 8 and shrunk["batch"] == 1 and shrunk["dtype"] == "fp32"
    repro = Path(summary["repro"])
    assert repro.is_file() and "repro:" in printed
    # The original package is gone; the repro must use its own copy of the patched kernel.
    for f in module.parent.iterdir():
        f.unlink() if f.is_file() else None
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    run = subprocess.run([sys.executable, str(repro)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "FAIL state h" in run.stdout and "status: fail" in run.stdout


def test_unpatched_emitted_kernel_passes_the_same_search(tmp_path, capsys):
    module = _emit(tmp_path / "clean", plant=False)
    rc = _fuzz(module, tmp_path / "out", examples=25)
    assert rc == 0, capsys.readouterr().out
