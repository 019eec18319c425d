"""Tile sweep of the GLA attention-form kernels (issue 5): per-kernel times of a few launch
configurations, then madc against fla `chunk_gla`, forward and forward+backward.

    python scripts/gpu_attention_tiles.py             # on a CUDA machine, < 6 minutes
    python scripts/gpu_attention_tiles.py quick       # the defaults only, then fla
    python scripts/gpu_attention_tiles.py 0,3,4       # rows 0, 3 and 4 of CONFIGS, then fla
    python scripts/gpu_attention_tiles.py 0 STATE_BLOCK=32:STATE_WARPS=2
                                      # row 0, then a row of MADC_ATTENTION_* settings
    MADC_TILES_SHAPE=2,16384,16,128,128 python scripts/gpu_attention_tiles.py quick
    MADC_TILES_OP=scalar python scripts/gpu_attention_tiles.py    # per-head decays [B, T, H]
                                                                  # against chunk_simple_gla
    MADC_TILES_DRY=1 python scripts/gpu_attention_tiles.py   # CPU: tiny shapes, interpreter

Each configuration is the emitted `ops/gla.scan` module imported under the environment
settings of its row (MADC_ATTENTION_FWD_BV, MADC_ATTENTION_STATE_BLOCK, ...: the launch
constants of `codegen/triton_attention_kernels.j2`). Per-kernel times are CUDA-profiler totals
over a few calls, divided by the call count; "fwd" and "f+b" are `triton.testing.do_bench`
medians of the whole call (bf16, B=8, T=4096, H=16, K=V=128, as `madc.bench_attention`).
Every line is printed as soon as it is measured (JSON), so a capped run keeps what it got;
fla's forward+backward comes last (its first backward autotunes for minutes).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

DRY = os.environ.get("MADC_TILES_DRY", "0") == "1"
if DRY:
    os.environ["TRITON_INTERPRET"] = "1"

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from madc.bench_attention import load_variant, rel_err  # noqa: E402

# MADC_TILES_SHAPE=B,T,H,K,V overrides the shape (issue 5 also asks for 2,16384,16,128,128)
SHAPE = (1, 40, 2, 16, 16) if DRY else (8, 4096, 16, 128, 128)
# "gla": a log-decay per key channel (g [B, T, H, K], fla chunk_gla); "scalar": one per head
# and token (g [B, T, H], fla chunk_simple_gla)
OP = os.environ.get("MADC_TILES_OP", "gla")
if OP not in ("gla", "scalar"):
    raise SystemExit(f"MADC_TILES_OP: got {OP!r}, expected gla or scalar")
if os.environ.get("MADC_TILES_SHAPE"):
    SHAPE = tuple(int(n) for n in os.environ["MADC_TILES_SHAPE"].split(","))
    if len(SHAPE) != 5:
        raise SystemExit(f"MADC_TILES_SHAPE: got {os.environ['MADC_TILES_SHAPE']!r}, "
                         "expected B,T,H,K,V")
# MADC_TILES_FWD_ONLY=1: forwards only, madc's rows and fla's (the backward's kernels take
# the longest to compile, fla's to autotune)
FWD_ONLY = os.environ.get("MADC_TILES_FWD_ONLY", "0") == "1"
BUDGET_S = 300  # variants stop here; fla's forward+backward may then run past it
CONFIGS = [
    {},  # the defaults
    {"MADC_ATTENTION_FWD_BV": "64"},
    {"MADC_ATTENTION_FWD_BV": "64", "MADC_ATTENTION_FWD_WARPS": "8"},
    {"MADC_ATTENTION_FWD_WARPS": "8"},
    {"MADC_ATTENTION_STATE_WARPS": "8"},
    {"MADC_ATTENTION_STATE_BLOCK": "32", "MADC_ATTENTION_STATE_WARPS": "2"},
    {"MADC_ATTENTION_BWD_WARPS": "8", "MADC_ATTENTION_BWD_DV_WARPS": "8"},
    {"MADC_ATTENTION_BWD_BV": "128"},
    {"MADC_ATTENTION_SPLIT": "0"},
    {"MADC_ATTENTION_STATE_STAGES": "3"},
    {"MADC_ATTENTION_STATE_STAGES": "4"},
    {"MADC_ATTENTION_STATE_NARROW": "1"},
    # all of K per recurrence program: 4 warps spill there (sm_90 ptxas), 8 do not
    {"MADC_ATTENTION_STATE_BK": "128", "MADC_ATTENTION_STATE_WARPS": "8"},
]


def _emit(**row):
    print(json.dumps(row), flush=True)


def _inputs(device):
    B, T, H, K, V = SHAPE
    gen = torch.Generator(device=device).manual_seed(0)
    dtype = torch.bfloat16
    q, k = (torch.randn(B, T, H, K, device=device, generator=gen, dtype=dtype)
            for _ in range(2))
    v = torch.randn(B, T, H, V, device=device, generator=gen, dtype=dtype)
    g = torch.nn.functional.logsigmoid(torch.randn(
        *((B, T, H, K) if OP == "gla" else (B, T, H)), device=device, generator=gen)).to(dtype)
    do = torch.randn(B, T, H, V, device=device, generator=gen, dtype=dtype)
    return [x.requires_grad_() for x in (q, k, v, g)], do


def _bench(fn, leaves):
    """Median ms of fn (do_bench); one plain call in the dry run."""
    if DRY:
        start = time.perf_counter()
        fn()
        return round((time.perf_counter() - start) * 1e3, 1)
    import triton

    return triton.testing.do_bench(fn, grad_to_none=leaves, return_mode="median")


def _per_kernel(fn, calls=5):
    """kernel name -> mean CUDA ms per call (profiler totals / calls); {} on CPU."""
    if DRY:
        fn()
        return {}
    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
    times = {}
    for event in prof.key_averages():
        total = getattr(event, "device_time_total", None)
        if total is None:
            total = event.cuda_time_total
        if total > 0:
            times[event.key[:48]] = round(total / 1e3 / calls, 4)
    return dict(sorted(times.items(), key=lambda kv: -kv[1]))


def sweep(leaves, do, scale):
    """Each configuration: forward and forward+backward times, then per-kernel times."""
    q, k, v, g = leaves
    start = time.time()
    outputs = None
    for env in CONFIGS:
        if time.time() - start > BUDGET_S:
            _emit(config=env, skipped="time budget")
            continue
        mod = load_variant("ops/gla.scan", env)

        def fwd(mod=mod):
            return mod.linear_attention(q, k, v, g, scale=scale)[0]

        def fwdbwd(fwd=fwd):
            fwd().backward(do)

        try:
            out = fwd()
        except Exception as err:  # noqa: BLE001 - a config that does not compile: next
            _emit(config=env, error=f"{type(err).__name__}: {err}"[:300])
            continue
        outputs = out if outputs is None else outputs
        with torch.no_grad():  # inference: no gradient to come, the plain recurrence
            inference = _bench(fwd, leaves)
        _emit(config=env, fwd_ms=_bench(fwd, leaves), fwd_nograd_ms=inference,
              err_vs_default=rel_err(out, outputs))
        _emit(config=env, kernels_fwd=_per_kernel(fwd))
        if FWD_ONLY:
            continue
        _emit(config=env, fwdbwd_ms=_bench(fwdbwd, leaves))
        _emit(config=env, kernels_fwdbwd=_per_kernel(fwdbwd))
    return outputs


def fla_side(leaves, do, scale, madc_out):
    """fla chunk_gla (chunk_simple_gla for scalar decays) on the same tensors: forward,
    then forward+backward (autotunes)."""
    try:
        if OP == "gla":
            from fla.ops.gla import chunk_gla as op
        else:
            from fla.ops.simple_gla import chunk_simple_gla as op
    except ImportError:
        _emit(fla="not importable")
        return
    q, k, v, g = leaves

    def fwd():
        return op(q, k, v, g=g, scale=scale)[0]

    def fwdbwd():
        fwd().backward(do)

    out = fwd()
    _emit(fla_fwd_ms=_bench(fwd, leaves), err_vs_madc=rel_err(madc_out, out))
    _emit(fla_kernels_fwd=_per_kernel(fwd))
    if FWD_ONLY:
        return
    _emit(fla_fwdbwd_ms=_bench(fwdbwd, leaves))
    _emit(fla_kernels_fwdbwd=_per_kernel(fwdbwd))


def main() -> int:
    """Sweep madc's configurations, then time fla side by side."""
    if not DRY and not torch.cuda.is_available():
        print("gpu_attention_tiles: needs CUDA (MADC_TILES_DRY=1 runs a CPU dry run)",
              file=sys.stderr)
        return 2
    device = "cpu" if DRY else "cuda"
    leaves, do = _inputs(device)
    scale = SHAPE[3] ** -0.5
    _emit(shape=dict(zip("BTHKV", SHAPE)), op=OP, dry=DRY,
          device=torch.cuda.get_device_name() if not DRY else "cpu")
    rows = []
    for arg in sys.argv[1:]:
        if arg == "quick":
            rows.append(CONFIGS[0])
        elif all(part.isdigit() for part in arg.split(",")):
            rows += [CONFIGS[int(i)] for i in arg.split(",")]
        elif all("=" in part for part in arg.split(":")):
            rows.append({f"MADC_ATTENTION_{part.split('=')[0]}": part.split("=", 1)[1]
                         for part in arg.split(":")})
        else:
            print(f"gpu_attention_tiles: unknown argument {arg!r}", file=sys.stderr)
            return 2
    if rows:
        CONFIGS[:] = rows
    madc_out = sweep(leaves, do, scale)
    if not DRY:
        fla_side(leaves, do, scale, madc_out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
