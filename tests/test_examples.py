"""The walkthroughs in examples/ stay true: every script runs and prints what its page shows,
every `madc` command line in a page runs with the exit status the page states, and every spec
a page shows is the file's text."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
PAGES = sorted(EXAMPLES.glob("0*.md"))
SCRIPTS = sorted(EXAMPLES.glob("0*.py"))
FENCE = re.compile(r"^```[a-z]*\n(.*?)^```", re.S | re.M)
EXIT = re.compile(r"\s+#\s*exit\s+(\d+)\s*$")
# Error magnitudes such as 1.7e-16 depend on the CPU's floating-point paths; everything else a
# script prints (values at 3 decimals, verdicts, messages) must match its page exactly.
TINY = re.compile(r"\d\.\de-\d\d")


def _blocks(page: Path) -> list[str]:
    return FENCE.findall(page.read_text())


def _is_command_block(block: str) -> bool:
    # Every line a command; an output block also has other lines, even where one of them
    # starts with "madc" (the fuzz summary, the bench table).
    return all(line.startswith(("madc ", "python ")) for line in block.splitlines())


def _commands() -> list[tuple[str, str, int, str]]:
    """(page name, command, expected exit status, output shown) for every `madc ...` line of a
    command block. The output shown is the next code block when it is not a command block
    and the command block holds one command; else ""."""
    found = []
    for page in PAGES:
        blocks = _blocks(page)
        for i, block in enumerate(blocks):
            if not _is_command_block(block):
                continue
            lines = block.splitlines()
            following = blocks[i + 1] if i + 1 < len(blocks) else ""
            shown = following if len(lines) == 1 and not _is_command_block(following) else ""
            for line in lines:
                if line.startswith("madc "):
                    match = EXIT.search(line)
                    command = line[:match.start()] if match else line
                    code = int(match.group(1)) if match else 0
                    found.append((page.name, command.strip(), code, shown))
    return found


COMMANDS = _commands()


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """One compile cache for the whole file: the walkthroughs reuse a few specs."""
    return tmp_path_factory.mktemp("madc_cache")


def _run(argv: list[str], cwd: Path, cache: Path) -> subprocess.CompletedProcess:
    env = os.environ | {"MADC_CACHE_DIR": str(cache)}
    env.pop("MADC_DEBUG", None)
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=env, timeout=300)


def _workdir(tmp_path: Path) -> Path:
    # Commands name examples/ and ops/ relative to the repository root; outputs land in tmp.
    for name in ("ops", "examples"):
        (tmp_path / name).symlink_to(REPO / name)
    return tmp_path


def test_the_walkthroughs_exist_and_are_indexed():
    index = (EXAMPLES / "README.md").read_text()
    assert [p.stem for p in PAGES] == [s.stem for s in SCRIPTS] and len(PAGES) == 3
    for page, script in zip(PAGES, SCRIPTS):
        assert f"]({page.name})" in index, f"examples/README.md does not link {page.name}"
        assert f"python examples/{script.name}" in page.read_text()
    tools = {command.split()[1] for _, command, _, _ in COMMANDS}
    assert tools == {"check", "compile", "fuzz", "train", "bench"}
    assert {code for _, _, code, _ in COMMANDS} == {0, 1, 2}


def test_every_spec_shown_is_the_file():
    shown = 0
    for page in PAGES:
        for block in _blocks(page):
            match = re.match(r"scan (\w+)\n", block)
            if not match:
                continue
            spec = EXAMPLES / f"{match.group(1)}.scan"
            assert spec.exists(), f"{page.name} shows a spec {spec.name} that does not exist"
            body = [line for line in spec.read_text().splitlines() if not line.startswith("#")]
            assert block.splitlines() == body, f"{page.name}: the {spec.name} shown is stale"
            shown += 1
    assert shown == 4


def _shown_output(script: Path) -> str:
    for page in PAGES:
        text = page.read_text()
        command = f"```\npython examples/{script.name}\n```\n\n```\n"
        if command in text:
            start = text.index(command) + len(command)
            return text[start:text.index("```", start)]
    raise AssertionError(f"no page shows the output of {script.name}")


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_runs_and_prints_what_its_page_shows(script, tmp_path, cache):
    proc = _run([sys.executable, f"examples/{script.name}"], _workdir(tmp_path), cache)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.rstrip().endswith("ok")
    printed = TINY.sub("<tiny>", proc.stdout)
    shown = TINY.sub("<tiny>", _shown_output(script))
    assert printed == shown, f"{script.name} prints:\n{proc.stdout}"


def _assert_key_output(command: str, code: int, out: str, workdir: Path) -> None:
    tool = command.split()[1]
    if code == 2:
        assert re.search(r"^examples/\w+\.scan:\d+:\d+: error\[E\d{4}\]: ", out, re.M), out
    elif code == 1:
        assert "refuted" in out and "counterexample" in out
    elif tool == "check":
        assert re.search(r"file\(s\): (\d+) proved, 0 unproven, 0 refuted, 0 with errors", out)
    elif tool == "compile":
        assert "wrote out/" in out
        if "--allow-promotion" in command:
            assert "scanning it as dense: per-combine cost O(n) -> O(n^3)" in out
    elif tool == "fuzz":
        assert ", 0 failures," in out
    elif tool == "train":
        assert re.search(r"eval +all: loss [\d.]+ +acc [\d.]+", out), out
        assert (workdir / "out" / "train" / "metrics.json").exists()
    elif tool == "bench":
        assert "madc chunked" in out and "reference (eager loop)" in out
    else:
        raise AssertionError(f"no key output known for {command!r}")


@pytest.mark.parametrize(("page", "command", "code", "shown"), COMMANDS,
                         ids=[f"{page}:{command}" for page, command, _, _ in COMMANDS])
def test_command_runs_with_the_stated_exit_status(page, command, code, shown, tmp_path, cache,
                                                  monkeypatch, capsys):
    # In-process through the console script's entry point (`madc = madc.cli:main`): a fresh
    # interpreter per command would spend most of this file's time importing torch.
    from madc.cli import main

    workdir = _workdir(tmp_path)
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("MADC_CACHE_DIR", str(cache))
    monkeypatch.delenv("MADC_DEBUG", raising=False)
    try:
        status = main(command.split()[1:])
    except SystemExit as stop:          # argparse's usage errors
        status = stop.code
    captured = capsys.readouterr()
    out = captured.out + captured.err
    assert status == code, f"{page}: {command}\n{out}"
    assert "Traceback" not in out and "internal error" not in out
    _assert_key_output(command, code, out, workdir)
    if command.split()[1] in ("check", "compile"):
        # Deterministic tools: every line the page shows (bar "...") is printed.
        printed = {line.rstrip() for line in out.splitlines()}
        missing = [line for line in shown.splitlines() if line != "..." and line not in printed]
        assert not missing, f"{page} shows lines that `{command}` does not print: {missing}"
