#!/usr/bin/env bash
# GPU checks and benchmarks of the Triton vector backend (issue 4).
# Run on a CUDA machine from the repository root; anchor wheels (accelerated-scan, fla-core,
# einops, lark) in .whl/ are installed to /tmp/site when present. Logs go to ${OUT:-/tmp/madc_vector}.
set -u
OUT=${OUT:-/tmp/madc_vector}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-}
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name --format=csv,noheader
python3 -m pytest -q -x tests/gpu/test_triton_vector_gpu.py -p no:cacheprovider 2>&1 \
    | tail -n 15 | tee "$OUT/gpu_tests.log"
bench() {  # bench FILE SHAPE DTYPE [SKIP]
    MADC_BENCH_SKIP=${4:-} python3 -m madc.cli bench "$1" --shape "$2" --dtype "$3" \
        --out "$OUT/bench" 2>&1 | grep -v -i warn | tee -a "$OUT/bench.log"
}
S=examples/scans
bench $S/linear_scan.scan B=8,T=4096,D=4096 bf16
bench $S/linear_scan.scan B=8,T=4096,D=4096 fp32 compile
bench $S/log_scan.scan B=8,T=4096,D=4096 bf16 compile
bench $S/tropical_scan.scan B=8,T=4096,D=4096 bf16 compile
bench ops/selective_ssm.scan B=8,T=4096,D=2048,N=16 bf16 compile
bench $S/linear_scan.scan B=1,T=65536,D=256 bf16 compile,reference
