#!/usr/bin/env bash
# The device experiments issue 4 has pending (docs/triton.md, "Session 23"), in one call of
# about 5 minutes, each capped so one that hangs cannot take the others with it; logs under
# $OUT (the device tool's folder) or runs/pending. Carry .whl (lark, fla-core,
# accelerated-scan: the download line is in the device README):
#   1. B=1 T=65536 D=256: session 19's two-piece Gluon look-back (the next piece's copy in
#      flight while this one looks back and walks) against the one-piece one, madc's
#      look-back and accelerated-scan;
#   2. fp32 (and bf16) B8 T4096 D4096: the diagonal scan with TMA-moved chunks against madc's
#      forward and accelerated-scan (scripts/gpu_tma_scan.py).
# Usage: scripts/gpu_pending.sh
set -u
cd "$(dirname "$0")/.."
LOG=${OUT:-runs/pending}
mkdir -p "$LOG"
. scripts/device_env.sh  # from the repository root
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$LOG/gpu.txt"
timeout 150 python3 scripts/gpu_gluon_lookback.py 16,12,2,1,8,4 p16,12,2,1,8,2 p16,8,2,2,8,2 \
    p16,6,2,1,8,4 p16,12,2,1,16,2 2>&1 | tee "$LOG/gluon_lookback.log"
timeout 150 python3 scripts/gpu_tma_scan.py 2>&1 | tee "$LOG/tma_scan.log"
