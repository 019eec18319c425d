#!/usr/bin/env bash
# Every timing of issues 4 and 5 in one device call (it replaces scripts/gpu_vector.sh; the
# correctness checks are `python3 -m pytest tests/gpu`, run in another call, where timing does
# not matter). Each run is capped; PARTS (default "vector ssm compile lookback attention",
# ~25 minutes in all) picks the parts: "vector" (the B8 scans, which the summary compares
# with each other) fits one 10-minute device call (about 9 minutes with a cold Triton cache:
# the log scan's kernels autotune for over 100 s), "ssm compile lookback" another (the fused
# selective SSM and B=1, each measured against its own floor), "attention" (fla's first
# backward autotunes for minutes) a third. Logs and JSON/PNG go to $OUT/bench.tgz, the tables
# to stdout; the summary names the issue's cases that a run lost to its caps.
#   PARTS="vector lookback" scripts/gpu_bench.sh   (carry .whl: lark, z3-solver, fla-core, accelerated-scan)
set -u
cd "$(dirname "$0")/.."
LOG=/tmp/madc_bench_logs
rm -rf "$LOG" && mkdir -p "$LOG"
. scripts/device_env.sh  # from the repository root
# first runs autotune for minutes; a carried TRITON_CACHE_DIR keeps the results with this
export TRITON_CACHE_AUTOTUNING=${TRITON_CACHE_AUTOTUNING:-1}
nvidia-smi --query-gpu=name,clocks.max.sm,clocks.max.mem --format=csv,noheader
bench() {  # bench FILE SHAPE DTYPE SKIP SECONDS
    MADC_BENCH_SKIP=$4 timeout "$5" python3 -m madc.cli bench "$1" --shape "$2" --dtype "$3" \
        --out "$LOG/bench" 2>&1 | grep -v -i warn | tee -a "$LOG/bench_vector.log"
}
S=examples/scans
PARTS=${PARTS:-vector ssm compile lookback attention}
part() { case " $PARTS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
if part vector; then
    # torch.compile's first compile at B8 takes the bf16 row past any cap (session 6 lost it):
    # the headline row skips it, a smaller row (part "compile") keeps the comparison
    # the channels-first row autotunes its own kernels (session 29): 30 s more, 20 for fp32
    bench $S/linear_scan.scan B=8,T=4096,D=4096 bf16 reference,compile 150
    # with a cold cache 60 s was not enough for the fp32 and tropical rows (session 24) and
    # 100 s not for the log row (session 23): none of them printed
    bench $S/linear_scan.scan B=8,T=4096,D=4096 fp32 compile 170
    bench $S/log_scan.scan B=8,T=4096,D=4096 bf16 compile,reference 200
    bench $S/tropical_scan.scan B=8,T=4096,D=4096 bf16 compile 120
fi
if part ssm; then
    # 70 s was not enough with a cold cache in session 30 (nothing printed; 30 s warm)
    bench ops/selective_ssm.scan B=8,T=4096,D=2048,N=16 bf16 compile 150
    # B=1's channels-first row autotunes 6 configs and is replayed as a graph (session 29)
    bench $S/linear_scan.scan B=1,T=65536,D=256 bf16 compile,reference 90
fi
# torch.compile of the chunked backend, at a shape where its first compile finishes (90 s
# was not enough in session 23)
if part compile; then
    bench $S/linear_scan.scan B=2,T=2048,D=1024 bf16 reference 200
fi
# the single-pass look-back forward (opt-in, first GPU runs): its own capped processes, so a
# look-back that spins cannot take the rest of the call with it
if part lookback; then
    for shape in B=8,T=4096,D=4096 B=1,T=65536,D=256; do
        MADC_BENCH_LOOKBACK=1 bench $S/linear_scan.scan $shape bf16 compile,reference 60
    done
fi
if part attention; then
    timeout 420 python3 -m madc.bench_attention --json "$LOG/bench_attention.json" 2>&1 \
        | grep -v -i warn | tee "$LOG/bench_attention.log"
fi
# the criteria of the vector-state issue, every ratio from this run's JSON files
if ls "$LOG"/bench/*.json >/dev/null 2>&1; then
    python3 -m madc.bench_summary "$LOG/bench" | tee "$LOG/summary.txt"
fi
tar czf "${OUT:-/tmp}/bench.tgz" -C "$LOG" .
