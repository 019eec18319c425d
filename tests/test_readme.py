"""The README stays true: every command it shows runs, with the exit code it promises."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def _block(lang: str, after: str) -> str:
    tail = README[README.index(after):]
    match = re.search(rf"```{lang}\n(.*?)```", tail, re.S)
    assert match, f"no ```{lang} block after {after!r} in README.md"
    return match.group(1)


COMMANDS = [line for line in _block("", "For example").splitlines() if line.startswith("madc ")]
EXPECTED_EXIT = {"madc check ops/gla.scan ops/monarch_ssm.scan": 1}


def _workdir(tmp_path: Path) -> Path:
    for name in ("ops", "examples"):
        (tmp_path / name).symlink_to(REPO / name)
    return tmp_path


def test_readme_shows_every_tool():
    tools = {cmd.split()[1] for cmd in COMMANDS}
    assert tools == {"check", "compile", "fuzz", "train", "sweep", "bench"}


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_runs(command, tmp_path):
    argv = [sys.executable, "-m", "madc.cli", *command.split()[1:]]
    env = os.environ | {"MADC_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run(argv, cwd=_workdir(tmp_path), capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == EXPECTED_EXIT.get(command, 0), proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    if command.startswith("madc check"):
        assert "refuted" in proc.stdout and "A @ B" in proc.stdout


def test_readme_python_snippet(tmp_path, capsys):
    code = _block("python", "## From Python")
    cwd = os.getcwd()
    os.chdir(_workdir(tmp_path))
    try:
        exec(compile(code, "README.md", "exec"), {})
    finally:
        os.chdir(cwd)
    printed = capsys.readouterr().out.strip()
    promised = re.search(r"print\(dict\(mod.inputs\)\)\s+# (.*)", code).group(1)
    assert printed == promised
