"""`madc demo` (what `make run` runs): the main job on built-in defaults.

1. check every spec of the operator zoo and print one verdict row per spec;
2. compile every accepted spec and run it on random inputs (forward and backward), one line
   per spec, with the chunked backend checked against the float64 reference;
3. a short CPU training of one zoo spec on one task, printing where its curves went.
"""

from __future__ import annotations

import argparse
import importlib.resources
import time
from pathlib import Path

from madc.algebra import check_ir
from madc.algebra_verdict import REFUTED
from madc.errors import CompileError
from madc.frontend import load_spec


def zoo_paths() -> list[Path]:
    """The `.scan` files of the operator zoo, sorted by name (shipped inside the wheel)."""
    root = importlib.resources.files("madc.zoo")
    return sorted(Path(str(p)) for p in root.iterdir() if p.name.endswith(".scan"))


def _first_refuted(report) -> str:
    for c in report.checks:
        if c.verdict == REFUTED:
            cex = c.counterexample or {}
            what = cex.get("class") or ", ".join(f"{k}={v}" for k, v in list(cex.items())[:3])
            return f"{c.name}: {what}"
    return ""


def verdict_table(paths: list[Path]) -> tuple[str, list[Path]]:
    """One row per spec (structure classes, checks proved, status); returns the table and
    the accepted specs."""
    rows, accepted = [], []
    for path in paths:
        try:
            ir = load_spec(path)
        except CompileError as err:
            rows.append((path.stem, "-", "-", "error", err.diagnostics[0].message))
            continue
        report = check_ir(ir)
        classes = ",".join(u.transition.structure for u in ir.updates)
        proved = sum(c.verdict == "proved" for c in report.checks)
        rows.append((ir.name, ir.semiring.name, classes,
                     f"{report.status} ({proved}/{len(report.checks)})", _first_refuted(report)))
        if report.status != REFUTED:
            accepted.append(path)
    head = ("spec", "semiring", "structure", "verdict", "refuted by")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(5)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip()
             for row in [head, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines), accepted


def random_inputs(module, batch: int, length: int, dtype, generator):
    """Random inputs for every declared input of a loaded module, `[B, T, (H,) *shape]`."""
    import torch

    heads = () if module.heads is None else (module.heads,)
    return {name: torch.randn(batch, length, *heads, *shape, dtype=dtype, generator=generator)
            for name, shape in module.inputs.items()}


def run_spec(path: Path, batch: int = 2, length: int = 37) -> tuple[str, float]:
    """Compile `path`, run chunked and reference backends on the same random inputs; return
    a one-line summary and the max relative difference of the outputs."""
    import torch

    import madc

    gen = torch.Generator().manual_seed(0)
    ref = madc.load(path, backend="reference").double()
    chunked = madc.load(path, backend="chunked").double()
    chunked.load_state_dict(ref.state_dict())
    inputs = {k: v.requires_grad_() for k, v in
              random_inputs(ref, batch, length, torch.float64, gen).items()}
    start = time.perf_counter()
    out_c = chunked(**inputs)
    out_c = out_c if isinstance(out_c, tuple) else (out_c,)
    sum(o.sum() for o in out_c).backward()
    elapsed = time.perf_counter() - start
    out_r = ref(**inputs)
    out_r = out_r if isinstance(out_r, tuple) else (out_r,)
    err = max(float((c - r).detach().abs().max() / r.detach().abs().max().clamp_min(1e-30))
              for c, r in zip(out_c, out_r))
    shapes = ", ".join("x".join(map(str, o.shape)) for o in out_c)
    line = (f"{path.stem:<18} outputs [{shapes}]  chunked vs reference max rel err {err:.1e}  "
            f"fwd+bwd {elapsed * 1e3:7.1f} ms")
    return line, err


def main_demo(args: argparse.Namespace) -> int:
    """Run the demo; return 0 when every step worked."""
    paths = zoo_paths()
    print(f"== 1. madc check: {len(paths)} specs of the operator zoo\n")
    table, accepted = verdict_table(paths)
    print(table)
    print(f"\n== 2. madc compile + run: {len(accepted)} accepted specs (B=2, T=37, float64)\n")
    worst = 0.0
    for path in accepted:
        line, err = run_spec(path)
        worst = max(worst, err)
        print(line, flush=True)
    if worst > 1e-10:
        print(f"chunked backend disagrees with the reference: {worst:.1e} > 1e-10")
        return 1
    if args.skip_train:
        return 0
    print("\n== 3. madc train: a short CPU run\n", flush=True)
    from madc.train.demo import demo_train

    where = demo_train(Path(args.out) / "train")
    print(f"\ncurves and metrics: {where}")
    return 0
