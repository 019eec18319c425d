"""The front end's driver: path or source -> verified `ScanIR`, or a `CompileError`.

    read -> parse (grammar/scan.lark) -> sema (names, shapes, updates) -> verify (IR contract)

Any bad input whatsoever ends in a `CompileError` with diagnostics: a missing file, a
directory, binary garbage, invalid UTF-8, an empty or huge file, deep nesting. `MADC_DEBUG=1`
prints each stage's result to stderr.
"""

from __future__ import annotations

import os
import pprint
import stat
import sys
from pathlib import Path

from madc import ir
from madc.errors import CompileError, Diagnostic

#: Largest spec accepted, in bytes (a real spec is a few hundred bytes).
MAX_SOURCE_BYTES = 1 << 20
#: Deepest bracket nesting accepted (the parser and checker recurse on it).
MAX_NESTING = 100


def _refuse(code: str, message: str, path: str, hint: str | None = None, source=None):
    raise CompileError([Diagnostic(None, code, message, hint)], source, path)


def _is_source(arg) -> bool:
    if isinstance(arg, os.PathLike):
        return False
    if "\n" in arg:
        return True
    # A one-line string naming something on disk (a directory, a file without the .scan
    # suffix) is a path: reading it gives a better diagnostic than parsing its name.
    if not arg.endswith(".scan"):
        try:
            return not (len(arg) < 4096 and os.path.exists(arg))
        except (OSError, ValueError):
            return True
    return False


def read_source(path_or_source: str | os.PathLike, path: str | None = None) -> tuple[str, str]:
    """(source text, path for diagnostics). Reading problems are `CompileError`s."""
    if not isinstance(path_or_source, (str, os.PathLike)):
        _refuse("E0001", f"expected a path or source text, got {type(path_or_source).__name__}",
                path or "<input>")
    if _is_source(path_or_source):
        text = path_or_source
        where = path or "<input>"
        if len(text.encode("utf-8", "surrogatepass")) > MAX_SOURCE_BYTES:
            _refuse("E0003", f"the spec is larger than {MAX_SOURCE_BYTES:,} bytes", where)
        return _check_text(text, where), where
    file = Path(path_or_source)
    where = path or str(path_or_source)
    where = where if where.isprintable() else ascii(where)  # never print control bytes
    shown = where if len(where) <= 200 else where[:200] + "..."
    try:
        mode = file.stat().st_mode
        if stat.S_ISDIR(mode):
            _refuse("E0001", f"`{shown}` is a directory, not a .scan file", where)
        if not stat.S_ISREG(mode):  # a FIFO or a device would block or never end
            _refuse("E0001", f"`{shown}` is not a regular file", where)
        with open(file, "rb") as fh:
            data = fh.read(MAX_SOURCE_BYTES + 1)
    except CompileError:
        raise
    except FileNotFoundError:
        _refuse("E0001", f"no such file: `{shown}`", where)
    except (OSError, ValueError) as err:  # ValueError: a NUL byte in the path
        reason = getattr(err, "strerror", None) or str(err)
        _refuse("E0001", f"cannot read `{shown}`: {reason}", where)
    if len(data) > MAX_SOURCE_BYTES:
        _refuse("E0003", f"the spec is larger than {MAX_SOURCE_BYTES:,} bytes", where)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        _refuse("E0002", f"the file is not valid UTF-8 (byte {err.start})", where,
                "a .scan file is UTF-8 text")
    return _check_text(text, where), where


def _check_text(text: str, where: str) -> str:
    if "\x00" in text:
        _refuse("E0002", "the input contains NUL bytes: it looks binary", where,
                "a .scan file is UTF-8 text")
    if any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        _refuse("E0002", "the input contains unpaired surrogates (not valid Unicode)", where)
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.strip():
        _refuse("E0004", "the spec is empty", where, "a spec starts with `scan NAME`", text)
    depth = deepest = 0
    for c in text:
        if c in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in ")]}":
            depth -= 1
    if deepest > MAX_NESTING:
        _refuse("E0005", f"brackets nest {deepest} deep; the limit is {MAX_NESTING}", where,
                "split the expression with `let` lines", text)
    return text


def _debug(stage: str, value) -> None:
    if os.environ.get("MADC_DEBUG"):
        print(f"--- madc: {stage}", file=sys.stderr)
        print(pprint.pformat(value, width=100, compact=True), file=sys.stderr)


def load_spec(path_or_source: str | os.PathLike, *, path: str | None = None) -> ir.ScanIR:
    """Parse and check a spec. `path_or_source` is source text if it contains a newline or
    does not end in `.scan`, otherwise a file path; `path` names it in diagnostics.
    Returns the verified `ScanIR`; raises `CompileError` for every problem."""
    from madc import parse, sema, verify

    source, where = read_source(path_or_source, path)
    try:
        tree = parse.parse(source, where)
        _debug("ast", tree)
        scan_ir = sema.analyse(tree, source)
        verify.verify(scan_ir)
        _debug("ir", scan_ir)
    except RecursionError:
        _refuse("E0005", "the spec nests too deeply to check", where,
                "split long expressions with `let` lines", source)
    return scan_ir
