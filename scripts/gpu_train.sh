#!/usr/bin/env bash
# The GPU runs of issue 7, sized for one 10-minute device call on one H100:
#   1. S5, train length 32, test length 64, 2 layers: pd_ssm (expected >= 90% at T64) against
#      selective_ssm (diagonal transitions: expected far below) with the same budget (a sweep);
#   2. MQAR at T=256 with 16 key-value pairs: gla (expected >= 90%), two model sizes;
#   3. training tokens/s of one gla model with the Triton backend vs the reference backend.
# Runs 1 and 2 share the GPU (each is far too small to fill it); 3 runs alone afterwards so
# its timing is not disturbed. Each part is capped by PART_SECONDS.
# Usage: scripts/gpu_train.sh [OUT_DIR]   (env: S5_STEPS, MQAR_STEPS, PY, PART_SECONDS,
#                                          ONLY=s5|mqar|speed)
set -uo pipefail   # no -e: one failing part must not skip the others
cd "$(dirname "$0")/.."
OUT=${1:-runs/gpu}
PY=${PY:-python3}
S5_STEPS=${S5_STEPS:-3000}
ONLY=${ONLY:-all}
MQAR_STEPS=${MQAR_STEPS:-3000}
PART_SECONDS=${PART_SECONDS:-400}
export PYTHONUNBUFFERED=1
# The device image has torch/triton/sympy/jinja2 but not lark: install the wheel from .whl/.
if ! "$PY" -c "import lark" 2>/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --target /tmp/madc_site .whl/lark-*.whl
    export PYTHONPATH=/tmp/madc_site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
mkdir -p "$OUT"
"$PY" -c "import torch; print(torch.__version__, torch.cuda.get_device_name())"

# S5: PD-SSM learns S5 in a sudden jump whose step depends on the schedule (cosine to 0 at
# --steps): with N=64, batch 256, lr 3e-3 it reached 99.4% at step 1000 of a 5000-step run, but
# only 24% at the end of a 1500-step run (docs/training.md); 3000 steps leave room.
[[ $ONLY == all || $ONLY == s5 ]] && timeout "$PART_SECONDS" "$PY" -m madc.train.cli sweep ops/pd_ssm.scan ops/selective_ssm.scan \
    --task s5 --task-arg train_len=32 --task-arg test_lens=64 --layers 2 --width 128 \
    --dim N=64 --steps "$S5_STEPS" --batch-size 256 --lr 3e-3 --eval-every 500 \
    --eval-batches 4 --ckpt-every 100000 --device cuda --backend chunked --no-progress \
    --out "$OUT/s5" >"$OUT/s5.log" 2>&1 &
# GLA's g is a log-space decay: it is fed logsigmoid(.)/16 as flash-linear-attention does
# (unbounded g diverges); a short conv gives the layer the token shift recall needs.
mqar() {  # NAME WIDTH LR [extra args]
    local name=$1 width=$2 lr=$3
    shift 3
    timeout "$PART_SECONDS" "$PY" -m madc.train.cli train ops/gla.scan --task mqar \
        --task-arg train_configs=256:16 --task-arg test_configs=256:16 \
        --input-act g=logsigmoid/16 --conv 4 --layers 2 --width "$width" "$@" \
        --steps "$MQAR_STEPS" --batch-size 256 --lr "$lr" --eval-every 250 --eval-batches 4 \
        --ckpt-every 100000 --device cuda --no-progress --out "$OUT/$name" \
        >"$OUT/$name.log" 2>&1
}
if [[ $ONLY == all || $ONLY == mqar ]]; then
    mqar mqar_gla_w128 128 3e-3 &
    mqar mqar_gla_w256 256 1e-3 --dim K=64 --dim V=64 &
fi
wait
for log in "$OUT"/s5.log "$OUT"/mqar_gla_w*.log; do
    [ -f "$log" ] || continue
    echo "== $log"
    grep -v -i "warn" "$log" | tail -n 14
done
[[ $ONLY == all || $ONLY == speed ]] && timeout 120 "$PY" -m madc.train.throughput ops/gla.scan --task mqar \
    --task-arg train_configs=256:16 --task-arg test_configs=256:16 \
    --backends triton,chunked,reference --layers 2 --width 128 --batch-size 64 \
    --steps 10 --warmup 3 --out "$OUT/speed" 2>&1 | grep -v -i warn | tee "$OUT/speed.log"
