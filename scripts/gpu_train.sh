#!/usr/bin/env bash
# The GPU runs of issue 7, sized for about 8 device-minutes on one H100:
#   1. S5, train length 32, test length 64, 2 layers: pd_ssm (expected >= 90% at T64) against
#      selective_ssm (diagonal transitions: expected far below) with the same budget (a sweep);
#   2. MQAR at T=256 with 16 key-value pairs: gla (expected >= 90%);
#   3. training tokens/s of one gla model with the Triton backend vs the reference backend.
# Usage: scripts/gpu_train.sh [OUT_DIR]   (env: S5_STEPS, MQAR_STEPS, PY, ONLY=s5|mqar|speed)
set -uo pipefail   # no -e: one failing part must not skip the others
cd "$(dirname "$0")/.."
OUT=${1:-runs/gpu}
PY=${PY:-python3}
S5_STEPS=${S5_STEPS:-2000}
MQAR_STEPS=${MQAR_STEPS:-2000}
ONLY=${ONLY:-all}
export PYTHONUNBUFFERED=1
# The device image has torch/triton/sympy/jinja2 but not lark: install the wheel from .whl/.
if ! "$PY" -c "import lark" 2>/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --target /tmp/madc_site .whl/lark-*.whl
    export PYTHONPATH=/tmp/madc_site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
mkdir -p "$OUT"
"$PY" -c "import torch; print(torch.__version__, torch.cuda.get_device_name())"

# S5 settings validated on an H100 (2026-11-23, 5000-step runs): pd_ssm with N=64, batch 256,
# lr 3e-3 reached 99.4% (T32+T64) at step 1000 and 100% at 2000; selective_ssm stayed at 3.7%
# after 5000 steps. The chunked backend is used for both (same numerics, one code path).
if [[ $ONLY == all || $ONLY == s5 ]]; then
    "$PY" -m madc.train.cli sweep ops/pd_ssm.scan ops/selective_ssm.scan --task s5 \
        --task-arg train_len=32 --task-arg test_lens=64 --layers 2 --width 128 --dim N=64 \
        --steps "$S5_STEPS" --batch-size 256 --lr 3e-3 --eval-every 500 --eval-batches 4 \
        --ckpt-every 100000 --device cuda --backend chunked --no-progress --out "$OUT/s5" \
        2>&1 | tee "$OUT/s5.log"
fi
# GLA's g is a log-space decay: it is fed logsigmoid(.)/16 as flash-linear-attention does
# (unbounded g diverges); a short conv gives the layer the token shift recall needs.
if [[ $ONLY == all || $ONLY == mqar ]]; then
    "$PY" -m madc.train.cli train ops/gla.scan --task mqar \
        --task-arg train_configs=256:16 --task-arg test_configs=256:16 \
        --input-act g=logsigmoid/16 --conv 4 --layers 2 --width 128 \
        --steps "$MQAR_STEPS" --batch-size 256 --lr 3e-3 --eval-every 250 --eval-batches 4 \
        --ckpt-every 100000 --device cuda --no-progress --out "$OUT/mqar_gla" \
        2>&1 | tee "$OUT/mqar.log"
fi
if [[ $ONLY == all || $ONLY == speed ]]; then
    "$PY" -m madc.train.throughput ops/gla.scan --task mqar \
        --task-arg train_configs=256:16 --task-arg test_configs=256:16 \
        --backends triton,chunked,reference --layers 2 --width 128 --batch-size 64 \
        --steps 10 --warmup 3 --out "$OUT/speed" 2>&1 | tee "$OUT/speed.log"
fi
