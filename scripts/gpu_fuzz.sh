#!/usr/bin/env bash
# Fuzz every accepted spec in ops/ with the Triton backend on CUDA: 200 examples each, in bf16
# and in fp32; print one table row per spec and dtype. Exit 1 if any run failed.
#   scripts/gpu_fuzz.sh [EXAMPLES] [OUT]       (defaults: 200, runs/gpu_fuzz)
set -u
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
EXAMPLES=${1:-200}
OUT=${2:-runs/gpu_fuzz}
mkdir -p "$OUT"
status=0
for spec in ops/*.scan; do
    name=$(basename "$spec" .scan)
    # Only specs the checker accepts (exit 0) are compiled and fuzzed.
    if ! "$PY" -m madc.cli check "$spec" >/dev/null 2>&1; then
        echo "skip $name (not accepted by madc check)"
        continue
    fi
    for dtype in bf16 fp32; do
        dir="$OUT/$name-$dtype"
        "$PY" -m madc.cli fuzz "$spec" --backend triton --device cuda --dtype "$dtype" \
            --examples "$EXAMPLES" --seed 0 --out "$dir" >"$dir.log" 2>&1
        rc=$?
        echo "$rc" >"$dir.rc"
        [ "$rc" -eq 0 ] || status=1
        echo "done $name $dtype (exit $rc)"
    done
done
"$PY" - "$OUT" <<'PYEOF'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
head = f"{'spec':<20}{'dtype':<6}{'exit':>5}{'examples':>9}{'fail':>5}{'oor':>5}" \
       f"{'max out':>10}{'max state':>10}{'max grad':>10}{'sec':>7}"
print(head)
print("-" * len(head))
for rc_file in sorted(out.glob("*.rc")):
    stem = rc_file.name[:-3]
    name, dtype = stem.rsplit("-", 1)
    rc = rc_file.read_text().strip()
    summary = out / stem / "summary.json"
    if not summary.exists():
        tail = (out / f"{stem}.log").read_text().strip().splitlines()[-1:]
        print(f"{name:<20}{dtype:<6}{rc:>5}  {tail[0] if tail else ''}")
        continue
    s = json.loads(summary.read_text())
    err = s["max_error"].get(dtype, {})
    cell = lambda k: "-" if k not in err else (err[k] if isinstance(err[k], str)
                                                else f"{err[k]:.2e}")
    print(f"{name:<20}{dtype:<6}{rc:>5}{s['examples']:>9}{s['failures']:>5}"
          f"{s['out_of_range']:>5}{cell('output'):>10}{cell('state'):>10}{cell('grad'):>10}"
          f"{s['seconds']:>7.0f}")
PYEOF
exit $status
