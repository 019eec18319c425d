"""Replay `madc fuzz` cases on a GPU and print every finding (error, allowance) per case.

    python3 scripts/gpu_replay.py CASES.jsonl [--device cuda]

Each line of CASES.jsonl is {"spec": "ops/<name>.scan", "case": {...the fuzz case...}}, the
case as `madc fuzz` prints it when shrunk (unspecified fields take the Case defaults). Used to
triage GPU-only failures side by side with knobs set in the environment (docs/fuzzing.md).
Exit status 1 if any finding is outside its allowance.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from madc.repro import Candidate, Case, run_case

DEFAULTS = {"batch": 1, "chunk_size": None, "dists": [], "initial_state": None, "lengths": [],
            "seed": 0}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", type=Path)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args(argv)
    bad = 0
    for line in args.cases.read_text().splitlines():
        if not line.strip():
            continue
        entry = json.loads(line)
        case = Case.from_json(json.dumps({**DEFAULTS, **entry["case"]}))
        result = run_case(Path(entry["spec"]).read_text(),
                          Candidate(backend="triton", device=args.device), case)
        print(f"{entry['spec']} {json.dumps(entry['case'])}: {result.status}",
              result.message[:500] if result.message else "")
        for f in result.findings:
            mark = "ok " if f.ok else "BAD"
            bad += not f.ok
            print(f"   {mark} {f.quantity:<28} {f.error:.3e} / {f.allowed:.3e}",
                  f.problem or "")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
