#!/usr/bin/env bash
# Triage of the two GPU-only problems the H100 run of 2026-11-23 left (see docs/fuzzing.md and
# docs/triton.md); one device call, carry .whl (lark):
#   1. gla / gated_gla bf16: "an illegal memory access" on the first failing fuzz case, rerun
#      alone with CUDA_LAUNCH_BLOCKING=1 (the faulting kernel is then the one named in the
#      traceback) and, when the image has it, under compute-sanitizer (names the access);
#   2. the log semiring: `madc bench` of log_scan produced no result within 90 s, and
#      `madc fuzz` of log_ssm no example within 300 s: time compile, autotune and one call.
# Usage: scripts/gpu_triage.sh [OUT_DIR]
set -u
cd "$(dirname "$0")/.."
OUT=${1:-runs/triage}
mkdir -p "$OUT"
if ! python3 -c "import lark" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --target /tmp/madc_site .whl/lark-*.whl
    export PYTHONPATH=/tmp/madc_site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
CASE='{"batch": 1, "chunk_size": null, "dims": [["H", 1], ["K", 3], ["V", 3]],
 "dists": [["k", "zeros"], ["g", "nonpos:tiny"]], "dtype": "bf16", "initial_state": "normal",
 "length": 50, "lengths": [50], "seed": 160426}'
cat >"$OUT/case.py" <<PYEOF
import sys
from madc.repro import Candidate, Case, run_case
spec = sys.argv[1]
result = run_case(open(spec).read(), Candidate(backend="triton", device="cuda"),
                  Case.from_json('''$CASE'''))
print(spec, result.status, result.message[:2000])
for f in result.findings:
    print("  ", f.quantity, f.error, f.allowed, f.problem)
PYEOF
for spec in ops/gla.scan ops/gated_gla.scan; do
    CUDA_LAUNCH_BLOCKING=1 timeout 100 python3 "$OUT/case.py" "$spec" 2>&1 \
        | grep -v -i warn | tail -n 25 | tee -a "$OUT/illegal_access.log"
done
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
if [ -n "$SAN" ]; then
    timeout 200 "$SAN" --tool memcheck --print-limit 5 python3 "$OUT/case.py" ops/gla.scan \
        2>&1 | grep -v -i warn | head -n 60 | tee "$OUT/sanitizer.log"
else
    echo "compute-sanitizer not found" | tee "$OUT/sanitizer.log"
fi
TRITON_PRINT_AUTOTUNING=1 timeout 180 python3 - <<'PYEOF' 2>&1 | grep -v -i warn | tee "$OUT/log_semiring.log"
import time
import torch
import madc
for spec in ("examples/scans/log_scan.scan", "ops/log_ssm.scan"):
    t0 = time.time()
    mod = madc.load(spec, backend="triton").cuda()
    x = {n: torch.randn(2, 37, *s, device="cuda", requires_grad=True)
         for n, s in mod.inputs.items()}
    out = mod(**x)
    torch.cuda.synchronize()
    print(f"{spec}: first forward {time.time() - t0:.1f}s", flush=True)
    t0 = time.time()
    (out if torch.is_tensor(out) else out[0]).float().sum().backward()
    torch.cuda.synchronize()
    print(f"{spec}: first backward {time.time() - t0:.1f}s", flush=True)
PYEOF
