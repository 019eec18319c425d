"""`madc check FILE...`: load each spec, run the algebra checker, print verdicts.

Exit status: 2 if any file could not be read, parsed or type-checked (its diagnostics go to
stderr); else 1 if any check is refuted, or unproven under `--strict`; else 0. The human
output is a table (spec, check, verdict, detail) with each counterexample under its row;
`--json` prints one JSON object whose schema is in `docs/checker.md`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TextIO

from madc.algebra import check_ir
from madc.algebra_verdict import PROVED, REFUTED, UNPROVEN, Report
from madc.errors import CompileError

JSON_SCHEMA = "madc-check/1"
_DETAIL_WIDTH = 96


def _load(path: str):
    """The ScanIR of `path`, or the rendered diagnostics (str) when it is refused."""
    from madc.frontend import load_spec

    try:
        # A Path, so that a name without the .scan suffix is still read as a file.
        return load_spec(Path(path), path=path)
    except CompileError as err:
        return err
    except (OSError, UnicodeDecodeError) as err:
        # The front end reports these as diagnostics; this is a safety net, never a traceback.
        return f"{path}: error: cannot read spec: {err}"


def _diagnostics_json(err) -> list:
    if isinstance(err, str):
        return [{"line": None, "column": None, "code": None, "message": err, "hint": None}]
    out = []
    for d in err.diagnostics:
        out.append({"line": d.span.line if d.span else None,
                    "column": d.span.column if d.span else None,
                    "code": d.code, "message": d.message, "hint": d.hint})
    return out


def _format_matrix(rows: list) -> list[str]:
    cells = [[str(v) for v in row] for row in rows]
    width = max(len(c) for row in cells for c in row)
    return ["[" + " ".join(c.rjust(width) for c in row) + "]" for row in cells]


def format_counterexample(cex: dict) -> list[str]:
    """A counterexample as indented text lines: scalars on one line, matrices side by side."""
    if "A" in cex and "B" in cex and "product" in cex:
        blocks = [("A", _format_matrix(cex["A"])), ("B", _format_matrix(cex["B"])),
                  ("A @ B", _format_matrix(cex["product"]))]
        lines = [f"counterexample ({cex.get('class')}, n={cex.get('n')}):"]
        head = "   ".join(name.ljust(len(m[0])) for name, m in blocks)
        lines.append(("  " + head).rstrip())
        for i in range(len(blocks[0][1])):
            lines.append("  " + "   ".join(m[i] for _, m in blocks))
        for key in ("A_from", "B_from"):
            if key in cex:
                args = ", ".join(f"{k}={v}" for k, v in cex[key].items())
                lines.append(f"  {key.replace('_from', '')} built from {args}")
        if "violation" in cex:
            lines.append(f"  why: {cex['violation']}")
        return lines
    if "op" in cex and "result" in cex:
        return [f"counterexample: {cex['a']} {cex['op']} {cex['b']} = {cex['result']}"]
    values = ", ".join(f"{k}={v}" for k, v in cex.items() if k not in ("lhs", "rhs"))
    return [f"counterexample: {values} gives lhs={cex.get('lhs')}, rhs={cex.get('rhs')}"]


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def render_table(reports: list[Report]) -> str:
    """The human table: one row per check, counterexamples indented under their row."""
    rows = [(r.spec, c.name, c.verdict, c) for r in reports for c in r.checks]
    if not rows:
        return ""
    w_spec = max(4, *(len(r[0]) for r in rows))
    w_name = max(5, *(len(r[1]) for r in rows))
    lines = [f"{'spec'.ljust(w_spec)}  {'check'.ljust(w_name)}  {'verdict'.ljust(8)}  detail"]
    for spec, name, verdict, check in rows:
        lines.append(f"{spec.ljust(w_spec)}  {name.ljust(w_name)}  {verdict.ljust(8)}  "
                     f"{_shorten(check.detail, _DETAIL_WIDTH)}")
        if check.counterexample is not None:
            pad = " " * (w_spec + 2)
            lines += [pad + line for line in format_counterexample(check.counterexample)]
    return "\n".join(lines)


def main_check(paths: list[str], json_out: bool, strict: bool, stdout: TextIO,
               stderr: TextIO) -> int:
    """Check every spec in `paths`; print the table (or JSON) to `stdout`, diagnostics and
    warnings to `stderr`; return the exit status (0 ok, 1 refuted/strict-unproven, 2 error)."""
    from madc.codegen.package import triton_plan

    reports, files, plans, errors = [], [], [], 0
    for path in paths:
        loaded = _load(path)
        if isinstance(loaded, (CompileError, str)):
            errors += 1
            print(loaded if isinstance(loaded, str) else loaded.render(), file=stderr)
            files.append({"path": path, "spec": None, "checks": [], "status": "error",
                          "diagnostics": _diagnostics_json(loaded)})
            continue
        report = check_ir(loaded)
        reports.append(report)
        plan = triton_plan(loaded)
        plans.append(f"{report.spec}: {plan}")
        files.append(report.to_json() | {"path": path, "backends": plan})
    statuses = [r.status for r in reports]
    if errors:
        code = 2
    elif REFUTED in statuses or (strict and UNPROVEN in statuses):
        code = 1
    else:
        code = 0
    if json_out:
        print(json.dumps({"schema": JSON_SCHEMA, "exit_code": code, "strict": strict,
                          "files": files}, indent=2, ensure_ascii=False), file=stdout)
        return code
    table = render_table(reports)
    if table:
        print(table, file=stdout)
        print("\nbackends\n" + "\n".join(plans), file=stdout)
    for r in reports:
        for c in r.checks:
            if c.verdict == UNPROVEN:
                level = "error" if strict else "warning"
                print(f"{r.path}: {level}: {c.name} is unproven ({c.detail})"
                      + ("" if strict else "; --strict refuses it"), file=stderr)
    counts = {v: statuses.count(v) for v in (PROVED, UNPROVEN, REFUTED)}
    print(f"{len(paths)} file(s): {counts[PROVED]} proved, {counts[UNPROVEN]} unproven, "
          f"{counts[REFUTED]} refuted, {errors} with errors", file=stdout)
    return code
