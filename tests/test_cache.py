"""The compilation cache: content-hash keys, reuse, and atomic writes (two processes
compiling the same spec at once both succeed and leave one valid entry)."""

from __future__ import annotations

import os
import subprocess
import sys

from codegen_util import REPO

from madc import cache
from madc.frontend import load_spec
from madc.runtime import compile_to_cache

_COMPILE = """
import sys
from madc.frontend import load_spec
from madc.runtime import compile_to_cache
print(compile_to_cache(load_spec(sys.argv[1])))
"""


def test_key_depends_on_source_path_and_options():
    base = cache.cache_key("scan a", "a.scan", {"backends": ["reference"]})
    assert base == cache.cache_key("scan a", "a.scan", {"backends": ["reference"]})
    assert base != cache.cache_key("scan b", "a.scan", {"backends": ["reference"]})
    assert base != cache.cache_key("scan a", "b.scan", {"backends": ["reference"]})
    assert base != cache.cache_key("scan a", "a.scan", {"backends": ["chunked"]})


def test_cache_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MADC_CACHE_DIR", str(tmp_path / "c"))
    assert cache.cache_dir() == tmp_path / "c" and (tmp_path / "c").is_dir()


def test_store_then_reuse(tmp_path, monkeypatch):
    monkeypatch.setenv("MADC_CACHE_DIR", str(tmp_path))
    ir = load_spec(str(REPO / "ops" / "hgrn.scan"))
    first = compile_to_cache(ir)
    assert (first / "__init__.py").is_file() and first.name == "hgrn"
    stamp = (first / "__init__.py").stat().st_mtime_ns
    assert compile_to_cache(ir) == first
    assert (first / "__init__.py").stat().st_mtime_ns == stamp


def test_losing_the_race_keeps_the_winner(tmp_path, monkeypatch):
    """Another process renames its complete copy in while we write ours: ours is dropped."""
    monkeypatch.setenv("MADC_CACHE_DIR", str(tmp_path))
    key = "f" * 64
    winner = tmp_path / f"hgrn-{key[:24]}" / "hgrn"
    real_mkdtemp = cache.tempfile.mkdtemp

    def racing_mkdtemp(*args, **kwargs):
        folder = real_mkdtemp(*args, **kwargs)
        winner.mkdir(parents=True)
        (winner / "__init__.py").write_text("WINNER")
        return folder

    monkeypatch.setattr(cache.tempfile, "mkdtemp", racing_mkdtemp)
    assert cache.store("hgrn", key, {"__init__.py": "LOSER"}) == winner
    assert (winner / "__init__.py").read_text() == "WINNER"
    assert [p.name for p in tmp_path.iterdir()] == [winner.parent.name]


def test_two_processes_compile_at_once(tmp_path):
    env = dict(os.environ, MADC_CACHE_DIR=str(tmp_path), PYTHONPATH=str(REPO))
    spec = str(REPO / "ops" / "mlstm.scan")
    procs = [subprocess.Popen([sys.executable, "-c", _COMPILE, spec], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [p.communicate(timeout=180) for p in procs]
    for proc, (_, err) in zip(procs, results):
        assert proc.returncode == 0, err
    paths = {out.strip() for out, _ in results}
    assert len(paths) == 1
    package = paths.pop()
    entries = list(tmp_path.iterdir())
    assert len(entries) == 1 and not entries[0].name.startswith(".tmp")
    names = sorted(os.listdir(package))
    assert {"__init__.py", "prologue.py", "reference.py", "chunked.py", "semiring.py"} <= set(
        names)
    for name in names:
        if name.endswith(".py"):
            text = open(os.path.join(package, name), encoding="utf-8").read()
            compile(text, name, "exec")
