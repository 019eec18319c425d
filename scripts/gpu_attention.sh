#!/usr/bin/env bash
# GPU checks and benchmark of the attention-form Triton backend (issue 5).
# Run on a CUDA machine from the repository root; fla-core wheels in .whl/ (optional).
# Logs go to ${OUT:-/tmp/madc_attention}.
set -u
OUT=${OUT:-/tmp/madc_attention}
mkdir -p "$OUT"
. scripts/device_env.sh  # from the repository root
nvidia-smi --query-gpu=name --format=csv,noheader
python3 -m pytest -q tests/gpu/test_triton_attention_gpu.py -p no:cacheprovider \
    2>&1 | tail -n 15 | tee "$OUT/gpu_tests.log"
python3 -m madc.bench_attention --json "$OUT/bench_attention.json" "$@" 2>&1 \
    | tee "$OUT/bench_attention.log"
