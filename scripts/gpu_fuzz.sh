#!/usr/bin/env bash
# Fuzz every accepted spec in ops/ with the Triton backend on CUDA: 200 examples each, in bf16
# and in fp32 (JOBS runs at a time, each capped at TIME_BUDGET seconds); print one table row
# per spec and dtype. Exit 1 if any run failed.
#   scripts/gpu_fuzz.sh [EXAMPLES] [OUT]   (defaults: 200, runs/gpu_fuzz; env PY, JOBS,
#                                          TIME_BUDGET, SPECS="ops/a.scan ops/b.scan",
#                                          DTYPES="bf16 fp32", SEEDS="0")
# SEEDS="0 1 2 3" runs EXAMPLES examples per seed, side by side: the runs share Triton's
# kernel cache, so a spec whose examples mostly compile new kernel variants (the attention
# form in fp32) gets through its examples sooner in parallel.
# On the device machine carry .whl (the lark wheel), as scripts/gpu_train.sh does.
set -u
cd "$(dirname "$0")/.."
PY=${PY:-python3}
export PYTHONUNBUFFERED=1
# The device image has torch/triton/sympy/jinja2/hypothesis but not lark: install the wheel
# from .whl/ (carried) into a scratch site dir.
if ! "$PY" -c "import lark" 2>/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --target /tmp/madc_site .whl/lark-*.whl
    export PYTHONPATH=/tmp/madc_site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
"$PY" -c "import torch; print(torch.__version__, torch.cuda.get_device_name())"
EXAMPLES=${1:-200}
OUT=${2:-runs/gpu_fuzz}
# Runs go JOBS at a time (the reference runs on the CPU, one thread each); each stops drawing
# new examples after TIME_BUDGET seconds so the whole script fits one 10-minute device call.
JOBS=${JOBS:-13}
TIME_BUDGET=${TIME_BUDGET:-240}
DTYPES=${DTYPES:-bf16 fp32}
SEEDS=${SEEDS:-0}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$OUT"

run_one() {  # spec dtype seed
    local name dir
    name=$(basename "$1" .scan)
    [ "$(echo $SEEDS | wc -w)" -gt 1 ] && name="$name-s$3"
    dir="$OUT/$name-$2"
    # --time-budget only stops drawing new examples: a hung or very slow first example (the
    # log semiring on 2026-11-23) is cut by `timeout` (exit 124), so the script still ends
    timeout $((TIME_BUDGET + 90)) "$PY" -m madc.cli fuzz "$1" --backend triton --device cuda \
        --dtype "$2" --examples "$EXAMPLES" --seed "$3" --time-budget "$TIME_BUDGET" \
        --shrink-seconds 60 --out "$dir" >"$dir.log" 2>&1
    echo $? >"$dir.rc"
    echo "done $name $2 (exit $(cat "$dir.rc"))"
}

for spec in ${SPECS:-ops/*.scan}; do
    name=$(basename "$spec" .scan)
    # Specs the checker refutes (exit 1) are not compiled, so not fuzzed.
    "$PY" -m madc.cli check "$spec" >/dev/null 2>&1
    if [ $? -eq 1 ]; then
        echo "skip $name (refuted by madc check)"
        continue
    fi
    for dtype in $DTYPES; do
        for seed in $SEEDS; do
            while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; done
            run_one "$spec" "$dtype" "$seed" &
        done
    done
done
wait
status=0
for rc_file in "$OUT"/*.rc; do
    [ "$(cat "$rc_file")" -eq 0 ] || status=1
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
    if s["shrunk_case"]:
        print(f"    shrunk failure: {s['shrunk_case']}")
PYEOF
exit $status
