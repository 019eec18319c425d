"""The vector-scan criteria of one `madc bench` run, side by side: every ratio is computed from
the JSON files a run wrote into one folder (the same process per spec, the same machine), so
a log or tropical scan is compared with the real scan of its own shape and dtype.

    python -m madc.bench_summary runs/bench

Targets: the diagonal real scan (`linear_scan`) at >= 95% of its I/O roofline forward and
>= 90% forward+backward, no slower than accelerated-scan; at B = 1 (the small-batch
long-sequence case) the one target is >= 70% forward, the other rows are printed without one;
any other scan of the same shape and dtype within 1.2x of it; an exp-bound fused spec >= 3x
faster than with its states materialised and within 1.5x of its floor. The issue's cases that
the folder lacks are listed under the table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# the targets of the vector-state issue, printed next to what was measured
TARGETS = {"fwd_roofline": 0.95, "fwdbwd_roofline": 0.90, "semiring_vs_real": 1.2,
           "ssm_vs_materialised": 3.0, "ssm_vs_floor": 1.5, "b1_roofline": 0.70}


# the cases the vector-state issue measures (spec, dtype, B, T, dims): a run that lacks one
# (a capped bench that timed out while autotuning, say) says so under its table
ISSUE_CASES = (("linear_scan", "bf16", 8, 4096, {"D": 4096}),
               ("linear_scan", "fp32", 8, 4096, {"D": 4096}),
               ("log_scan", "bf16", 8, 4096, {"D": 4096}),
               ("tropical_scan", "bf16", 8, 4096, {"D": 4096}),
               ("selective_ssm", "bf16", 8, 4096, {"D": 2048, "N": 16}),
               ("linear_scan", "bf16", 1, 65536, {"D": 256}))


def _entry(result: dict, prefix: str) -> dict | None:
    return next((e for e in result["entries"] if e["name"].startswith(prefix)), None)


def load(folder: Path) -> list[dict]:
    """Every bench result (JSON) in `folder`, sorted by file name."""
    return [json.loads(p.read_text()) for p in sorted(Path(folder).glob("*.json"))]


def _shape(result: dict) -> tuple:
    """What makes two runs comparable: batch, length, dims and dtype."""
    return (result["B"], result["T"], json.dumps(result["dims"], sort_keys=True),
            result["dtype"])


def _label(result: dict) -> str:
    """A result's case as the table prints it: spec, dtype, batch, length and dims."""
    return f"{result['spec']} {result['dtype']} B{result['B']} T{result['T']} " + ",".join(
        f"{k}={v}" for k, v in result["dims"].items())


def _ratio(num, den):
    return None if num is None or den is None or den <= 0 else num / den


def rows(results: list[dict]) -> list[tuple[str, str, float | None, str]]:
    """(case, measure, value, target) for each criterion the results allow computing."""
    out = []
    real = {_shape(r): r for r in results if r["spec"] == "linear_scan"}
    for r in results:
        case = _label(r)
        madc, roof = _entry(r, "madc triton"), _entry(r, "HBM roofline")
        graph = _entry(r, "madc triton, CUDA graph")
        floor = _entry(r, "special-function floor")
        # the roofline targets are the diagonal real scan's; other scans report the fraction
        # (an exp-bound spec is measured against its own floor below)
        diagonal = r["spec"] == "linear_scan"
        if madc and roof and not floor:
            for key, label, target in (("fwd_ms", "forward", "fwd_roofline"),
                                       ("fwdbwd_ms", "forward+backward", "fwdbwd_roofline")):
                frac = _ratio(roof[key], madc[key])
                if r["B"] == 1:  # B = 1 has a forward target only
                    target = "b1_roofline" if key == "fwd_ms" else None
                out.append((case, f"{label}, fraction of the I/O roofline", frac,
                            f">= {TARGETS[target]:.0%}" if diagonal and target else "-"))
            if graph:
                target = TARGETS["b1_roofline" if r["B"] == 1 else "fwd_roofline"]
                out.append((case, "forward (CUDA graph), fraction of the I/O roofline",
                            _ratio(roof["fwd_ms"], graph["fwd_ms"]),
                            f">= {target:.0%}" if diagonal else "-"))
                if graph.get("fwdbwd_ms") is not None:
                    target = TARGETS["fwdbwd_roofline"]
                    out.append((case, "forward+backward (CUDA graph), fraction of the I/O "
                                "roofline", _ratio(roof["fwdbwd_ms"], graph["fwdbwd_ms"]),
                                f">= {target:.0%}" if diagonal and r["B"] > 1 else "-"))
        anchor = _entry(r, "accelerated-scan")
        first = _entry(r, "madc triton, channels first")
        if roof and not floor:
            # the same scan on inputs stored [B, D, T], read in place: against the same
            # roofline and targets (the issue does not name a layout)
            for name, e in (("channels first", first), ("channels first, CUDA graph",
                            _entry(r, "madc triton, channels first, CUDA graph"))):
                if e is None:
                    continue
                target = TARGETS["b1_roofline" if r["B"] == 1 else "fwd_roofline"]
                out.append((case, f"forward ({name}), fraction of the I/O roofline",
                            _ratio(roof["fwd_ms"], e["fwd_ms"]),
                            f">= {target:.0%}" if diagonal else "-"))
                if r["B"] > 1 and e.get("fwdbwd_ms") is not None:
                    out.append((case, f"forward+backward ({name}), fraction of the I/O "
                                "roofline", _ratio(roof["fwdbwd_ms"], e["fwdbwd_ms"]),
                                f">= {TARGETS['fwdbwd_roofline']:.0%}" if diagonal else "-"))
        if madc and anchor:
            for key, label in (("fwd_ms", "forward"), ("fwdbwd_ms", "forward+backward")):
                out.append((case, f"{label}, accelerated-scan time / madc time",
                            _ratio(anchor[key], madc[key]), ">= 1" if r["B"] > 1 else "-"))
                if first:  # the same layout as the anchor's ([B, D, T])
                    out.append((case, f"{label}, accelerated-scan / madc channels first",
                                _ratio(anchor[key], first[key]), ">= 1" if r["B"] > 1 else "-"))
        twin = real.get(_shape(r))
        if madc and twin is not None and twin is not r:
            # forward, and forward+backward (eager and as CUDA graphs), against the real
            # scan's: the issue's 1.2x is the forward's; forward+backward is shown against it
            # too, since the issue's wording may cover it
            for prefix, key, label in (("madc triton", "fwd_ms", "forward"),
                                       ("madc triton", "fwdbwd_ms", "forward+backward"),
                                       ("madc triton, CUDA graph", "fwdbwd_ms",
                                        "forward+backward (CUDA graph)")):
                mine, base = _entry(r, prefix), _entry(twin, prefix)
                if mine is None or mine.get(key) is None:
                    continue
                out.append((case, f"{label}, time / the real linear scan's", _ratio(
                    mine[key], base.get(key) if base else None),
                    f"<= {TARGETS['semiring_vs_real']}x"))
        mat = _entry(r, "madc triton, states materialised")
        if madc and mat:
            out.append((case, "forward, states materialised / fused", _ratio(
                mat["fwd_ms"], madc["fwd_ms"]), f">= {TARGETS['ssm_vs_materialised']}x"))
        if madc and floor and roof:
            bound = max(floor["fwd_ms"], roof["fwd_ms"])
            out.append((case, "forward / its floor (max of exp and I/O)", _ratio(
                madc["fwd_ms"], bound), f"<= {TARGETS['ssm_vs_floor']}x"))
            if graph:
                out.append((case, "forward (CUDA graph) / its floor", _ratio(
                    graph["fwd_ms"], bound), f"<= {TARGETS['ssm_vs_floor']}x"))
    return out


def missing(results: list[dict]) -> list[str]:
    """The issue's cases (ISSUE_CASES) that no result in `results` measured, as labels."""
    have = {(r["spec"], _shape(r)) for r in results}
    cases = [{"spec": spec, "dtype": dtype, "B": B, "T": T, "dims": dims}
             for spec, dtype, B, T, dims in ISSUE_CASES]
    return [_label(c) for c in cases if (c["spec"], _shape(c)) not in have]


def table(results: list[dict]) -> str:
    """The rows as an aligned text table (a missing value prints as '-')."""
    lines = [f"{'case':44} {'measure':52} {'value':>8}  target"]
    for case, measure, value, target in rows(results):
        if value is None:
            shown = "-"
        elif "fraction" in measure:
            shown = f"{value:.1%}"
        else:
            shown = f"{value:.3f}x"  # 1.505 must not read as 1.50
        lines.append(f"{case:44} {measure:52} {shown:>8}  {target}")
    return "\n".join(lines)


def main(argv=None) -> int:
    """Print the table for a folder of `madc bench` JSON files; 2 if there are none."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    args = parser.parse_args(argv)
    results = load(args.folder)
    if not results:
        print(f"bench_summary: no bench JSON in {args.folder}", file=sys.stderr)
        return 2
    print(table(results))
    absent = missing(results)
    if absent:
        print("not measured in this run: " + "; ".join(absent))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
