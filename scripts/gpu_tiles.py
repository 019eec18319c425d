"""Sweep the vector backend's tiling options on a GPU: one line per (case, tile), side by side
in one process with the copy bandwidth, so the autotune lists and heuristics of
`codegen/triton_vector.py.j2` come from measurements (docs/triton.md).

    python3 scripts/gpu_tiles.py PART [PART ...]
    # parts: b8 fp32 fp32s log bwd bwd2 b1 lookback lookback1 host ssm depth ab v4 rows
    #        stages stages32 first first0 weights

A tile is `BT,BC,VEC,PREFETCH,WARPS[,STAGES]` (the chunk_size, block_channels, vector_width,
prefetch, num_warps and stages options of the generated `scan`). Times are
medians of `triton.testing.do_bench` (and `do_bench_cudagraph` where marked `graph`, which
leaves out the host's launch overhead). A tile that fails to compile or run prints its error.
"""

from __future__ import annotations

import importlib
import os
import sys
import time

import torch
import triton
import triton.testing

import madc
from madc.bench import _inputs, copy_bandwidth, timer

S = "examples/scans"
# MADC_TILES_DRY=1: tiny shapes on the CPU under TRITON_INTERPRET=1, to check the script itself
DRY = os.environ.get("MADC_TILES_DRY") == "1"
DEVICE = torch.device("cpu" if DRY else "cuda")
B8 = (1, 40, 64) if DRY else (8, 4096, 4096)
B1 = (1, 300, 32) if DRY else (1, 65536, 256)
# (BT, BC, VEC, PREFETCH, WARPS); VEC 0 means BC (natural 16-byte vectors)
FWD_BF16 = ["8,1024,0,0,4", "8,1024,0,1,4", "16,1024,0,1,4", "32,256,2,0,4", "32,256,2,1,4",
            "16,256,2,1,4", "16,512,4,0,4", "16,512,4,1,4", "32,512,4,1,4", "32,128,2,1,2",
            "16,128,2,1,1", "32,64,2,1,1", "64,64,0,1,4", "16,256,0,1,1", "8,256,0,1,1",
            "32,256,0,1,1", "16,512,0,1,2", "8,512,0,1,2", "64,256,2,1,4"]
FWD_FP32 = ["32,128,0,0,4", "32,128,0,1,4", "16,128,0,1,4", "32,256,2,1,4", "16,512,0,1,4",
            "8,512,0,1,4", "16,256,0,1,2", "32,64,0,1,1"]
LOG_BF16 = ["32,256,2,0,4", "32,256,2,1,4", "16,256,2,1,4", "8,1024,0,1,4", "16,512,4,1,4",
            "64,64,0,1,4", "32,128,2,1,2"]
BWD_BF16 = ["32,64,0,0,4", "32,64,0,1,4", "16,256,2,0,4", "16,256,2,1,4", "32,128,2,0,2",
            "32,128,2,1,2", "16,512,4,1,4", "8,1024,0,1,4", "32,256,2,1,4", "16,256,0,1,1",
            "8,512,0,1,2", "16,128,2,1,1", "32,64,2,1,1"]
# the backward launcher alone ("tuned": its autotuner), with the forward's default tile
BWD_ONLY_BF16 = ["tuned", "16,256,2,1,4", "16,256,2,0,4", "8,256,2,1,4", "8,512,4,1,4",
                 "16,128,2,1,2", "8,128,2,1,2", "8,512,2,1,4", "32,128,2,0,2", "16,512,4,1,4",
                 "32,64,0,1,4", "8,256,2,1,2", "16,256,2,1,8", "32,256,2,0,8"]
# the second sweep (after the first put bf16 at 70%): narrower and natural vectors
BWD_ONLY_BF16_2 = ["tuned", "16,128,2,1,2", "16,128,0,1,4", "16,64,0,1,2", "8,128,0,1,2",
                   "16,128,2,1,4", "32,128,2,1,4", "16,64,2,1,1", "8,64,2,1,1", "16,128,4,1,2",
                   "16,256,4,1,4", "8,128,2,1,1", "16,128,2,0,2", "32,128,0,1,4"]
BWD_ONLY_FP32 = ["tuned", "8,512,4,1,4", "8,256,2,1,4", "16,256,2,0,4", "16,256,2,1,4",
                 "16,128,0,1,4", "8,128,2,1,2", "8,256,4,1,2", "16,512,4,0,4", "4,512,4,1,4"]
# the fused rank-3 forward of the selective SSM: BC channels x N state columns per program
SSM_TILES = ["16,32,0,0,4", "16,32,0,1,4", "8,64,0,1,2", "16,16,0,1,2", "32,16,0,1,4",
             "16,64,0,1,4", "8,32,0,1,1", "32,32,0,1,4", "16,8,0,1,1", "4,128,0,1,4",
             "16,32,1,1,4", "16,64,2,1,4"]
B1_TILES = ["16,256,2,1,4", "16,256,2,0,4", "32,256,2,1,4", "8,256,2,1,4", "16,128,2,1,2",
            "32,64,2,1,1", "16,64,2,1,1"]
# the look-back (one program per piece of ~LOOKBACK_PER_SM programs per SM, read twice: for
# its aggregate and for the states) with in-thread tiles, at the windows of LOOKBACK_WINDOWS
# (tv.LOOKBACK_WINDOW); the first tile also at the programs per SM of LOOKBACK_PER_SM
LOOKBACK = ["16,256,2,1,4", "32,128,2,1,2", "16,128,2,1,2", "32,64,2,1,1", "16,256,2,0,4"]
LOOKBACK_WINDOWS = (8, 16, 32)
LOOKBACK_PER_SM = (2, 8, 16)
# session 7: prefetch depth (PREFETCH chunks of reads in flight; ptxas: bf16 forward 32 rows
# depth 2 254 registers, 16 rows depth 3 166; backward 8 rows depth 3 164, 16 rows depth 2
# spills 32 bytes)
DEPTH_FWD_BF16 = ["32,128,2,1,2", "32,128,2,2,2", "16,128,2,2,2", "16,128,2,3,2",
                  "32,64,2,2,1", "16,64,2,3,1", "16,256,2,3,4", "8,128,2,3,2", "32,256,2,2,4"]
# fp32, fused, loads pipelined by Triton (the `stages` option; session 20): wider vectors and
# channel blocks, against accelerated-scan in the same run
FP32_STAGES = ["32,128,4,0,4", "32,128,2,0,2", "32,256,4,0,4", "64,128,4,0,4", "16,256,4,0,4",
               "32,64,4,0,2"]
DEPTH_FWD_FP32 = ["32,128,0,1,4", "16,128,0,2,4", "16,128,0,3,4", "32,128,2,1,2",
                  "16,128,2,3,2", "32,128,2,2,2", "16,128,4,3,4"]
DEPTH_LOG_BF16 = ["32,128,2,1,2", "16,128,2,2,2", "16,128,2,3,2", "32,64,2,2,1"]
DEPTH_BWD_BF16 = ["tuned", "16,128,2,1,2", "16,128,2,2,2", "8,128,2,3,2", "8,128,2,2,2",
                  "8,64,2,3,1", "16,64,2,2,1", "8,256,2,3,4"]
# the fused forward (what inference of a real or tropical scan runs) against the unfused one
AB_BF16 = ["32,128,2,1,2", "32,128,2,2,2", "32,64,2,1,1", "32,64,2,2,1", "16,128,2,2,2",
           "16,128,2,3,2", "16,64,2,3,1"]
# 8-byte bf16 vectors (half the threads, twice the bytes per load instruction)
V4_BF16 = ["32,128,2,2,2", "32,128,4,1,1", "32,128,4,2,1", "16,128,4,3,1", "32,256,4,1,2",
           "16,256,4,3,2", "32,64,4,2,1"]
AB_FP32 = ["32,128,0,1,4", "32,128,0,2,4", "16,128,0,2,4", "32,64,0,1,2"]
# session 25: the unfused forward's and the backward's steady loops with Triton's pipelined
# loads (STAGES, the sixth field, with PREFETCH 0) against their register-prefetch rows
STAGES_BWD_BF16 = ["tuned", "16,128,2,1,2", "16,128,2,0,2,3", "16,128,2,0,2,4",
                   "32,128,2,0,2,3", "16,256,2,0,4,3", "32,64,2,0,1,3", "16,128,4,0,1,3"]
STAGES_BWD_FP32 = ["tuned", "16,128,0,1,4", "16,128,0,0,4,3", "32,128,0,0,4,3",
                   "16,128,2,0,2,3"]
STAGES_FWD_BF16 = ["32,128,2,1,2", "32,128,2,0,2,3", "16,128,2,0,2,3", "16,128,2,0,2,4"]
DEPTH_BWD_FP32 = ["tuned", "16,128,0,1,4", "16,128,0,2,4", "8,128,0,3,4", "8,128,2,3,2"]


# session 28: channels-first inputs ([B, D, T] storage, accelerated-scan's layout, read in
# place): long runs of each channel's rows, few channels per program
FIRST_FP32 = ["512,4,0,0,4", "2048,1,0,0,4", "256,8,0,0,4", "1024,4,0,0,8", "1024,4,0,1,4",
              "512,4,0,0,4,3"]
FIRST_BF16 = ["1024,4,0,0,4", "4096,1,0,0,4", "512,8,0,0,4", "2048,4,0,0,8", "1024,4,0,1,4",
              "512,4,0,0,4,3"]
# session 29: B=1 D=256 channels first is one channel per program, 256 programs: pipelined
# rows keep loads in flight across chunks
FIRST_B1 = ["2048,1,0,0,4", "2048,1,0,1,4", "2048,1,0,0,4,3", "4096,1,0,0,4"]


# session 29: the log and tropical scans' forward+backward with step weights against the real
# scan's, at the same fixed tiles (no autotuning: the forward's and the backward's heuristic
# chunk sizes, the other taking it too)
WEIGHTS_BF16 = ["32,128,2,1,2", "16,128,2,1,2"]
WEIGHTS_FP32 = ["32,128,0,1,4", "16,128,0,1,4"]


def _options(tile: str) -> dict:
    bt, bc, vec, pf, w, *stages = (int(v) for v in tile.split(","))
    opts = {"chunk_size": bt, "block_channels": bc, "prefetch": pf, "num_warps": w}
    if vec:
        opts["vector_width"] = vec
    if stages:
        opts["stages"] = stages[0]
    return opts


class Case:
    """One spec, shape and dtype: its generated `scan`, inputs and roofline."""

    def __init__(self, spec, shape, dtype, first=False, **dims):
        B, T, D = shape
        self.mod = madc.load(spec, backend="triton", D=D, **dims).to(DEVICE)
        self.tv = importlib.import_module(f"{type(self.mod).__module__}.triton_vector")
        self.inputs = _inputs(self.mod, B, T, dtype, DEVICE)
        if first:  # stored [B, D, T], passed as [B, T, D] views (`_channels_first`)
            self.inputs = {k: v.transpose(1, 2).contiguous().transpose(1, 2)
                           for k, v in self.inputs.items()}
        self.dims = dict(self.mod.dims)
        self.leaves = {k: v.clone().requires_grad_(True) for k, v in self.inputs.items()}
        self.io = sum(x.numel() * x.element_size() for x in self.inputs.values())
        self.params = dict(self.mod.named_parameters())
        self.ones = None  # dL/dy of fwdbwd
        self.label = (f"{spec.rsplit('/', 1)[-1]} {str(dtype)[6:]} B{B} T{T} D{D} {dims or ''}"
                      + (" channels first" if first else ""))

    def fwd(self, **opts):
        opts = {"fused": False} | opts
        with torch.no_grad():
            return self.tv.scan(self.inputs, self.params, self.dims, None, None, **opts)

    def fwdbwd(self, **opts):
        outs, finals = self.tv.scan(self.leaves, self.params, self.dims, None, None, **opts)
        if self.ones is None or self.ones.shape != outs[0].shape:
            self.ones = torch.ones_like(outs[0])  # dL/dy: made once, not timed (as madc bench)
        outs[0].backward(self.ones)
        for x in self.leaves.values():
            x.grad = None


def baseline(case, bw, measure):
    """The default forward (`scan` without options: what a module call runs) eager and as a
    CUDA graph, and accelerated-scan's, against the roofline, in the same run as a sweep."""
    floor_f = (case.io + case.io // 2) / bw * 1e3
    ms = measure(case.fwd)
    g = ms if DRY else triton.testing.do_bench_cudagraph(case.fwd, rep=60)
    print(f"\n## {case.label}  default forward {ms:8.4f} ms ({100 * floor_f / ms:5.1f}%)  "
          f"graph {g:8.4f} ms ({100 * floor_f / g:5.1f}%)", flush=True)
    from madc import anchors

    a, b = case.inputs["a"], case.inputs["b"]
    for name, (fn, args) in anchors.diagonal_anchors(a, b).items():
        ms = measure(lambda fn=fn, args=args: fn(*args))
        print(f"{name:>30} fwd {ms:8.4f} ms ({100 * floor_f / ms:5.1f}%)", flush=True)


def sweep(case, tiles, bw, measure, extra=None, fb=False, graph=False):
    out_bytes = case.io // 2  # one output the size of one input
    floor_f = (case.io + out_bytes) / bw * 1e3
    floor_fb = (3 * case.io + 2 * out_bytes) / bw * 1e3
    print(f"\n## {case.label}  roofline fwd {floor_f:.4f} ms, fwd+bwd {floor_fb:.4f} ms",
          flush=True)
    for tile in tiles[:1] if DRY else tiles:
        opts = _options(tile) | (extra or {})
        def run(opts=opts):
            return case.fwd(**opts)

        def run_fb(opts=opts):
            return case.fwdbwd(**opts)
        try:
            t0 = time.time()
            ms = measure(run)
            line = f"{tile:>18} {extra or ''} fwd {ms:8.4f} ms ({100 * floor_f / ms:5.1f}%)"
            if graph and not DRY:
                g = triton.testing.do_bench_cudagraph(run, rep=60)
                line += f"  graph {g:8.4f} ms ({100 * floor_f / g:5.1f}%)"
            if fb:
                ms2 = measure(run_fb)
                line += f"  fwd+bwd {ms2:8.4f} ms ({100 * floor_fb / ms2:5.1f}%)"
                if graph and not DRY:
                    g = triton.testing.do_bench_cudagraph(run_fb, rep=60)
                    line += f"  graph {g:8.4f} ms ({100 * floor_fb / g:5.1f}%)"
            print(line + f"  [{time.time() - t0:.1f} s]", flush=True)
        except Exception as exc:  # noqa: BLE001 - a failing tile is a result
            print(f"{tile:>18} {extra or ''} FAILED {type(exc).__name__}: {str(exc)[:200]}",
                  flush=True)


def sweep_bwd(case, tiles, bw, measure):
    """The backward launcher alone (dL/dh all ones, no dL/dh_T) against its five arrays."""
    B, T, C = (next(iter(case.inputs.values())).shape[i] for i in range(3))
    a, b = (case.inputs[k].reshape(-1, C).contiguous() for k in ("a", "b"))
    seg, uniform = case.tv._segments((B, T), None, a.device)
    h0 = torch.zeros(B, C, dtype=torch.float32, device=a.device)
    hs, _ = case.tv.linear_scan_fwd(a, b, h0, seg, uniform, {})
    dhs, dht = torch.ones_like(hs), torch.zeros_like(h0)
    floor = 5 * a.numel() * a.element_size() / bw * 1e3
    print(f"\n## backward kernel(s) alone, {case.label}  roofline {floor:.4f} ms (5 arrays)",
          flush=True)
    bwd = case.tv.linear_scan_bwd
    for tile in tiles[:1] if DRY else tiles:
        opts = _options(tile) if tile != "tuned" else {}
        try:
            ms = measure(lambda opts=opts: bwd(a, b, h0, hs, seg, uniform, dhs, dht, opts))
            picked = f"  picked {_picked(case, 'bwd')}" if tile == "tuned" else ""
            print(f"{tile:>18} bwd {ms:8.4f} ms ({100 * floor / ms:5.1f}%){picked}", flush=True)
        except Exception as exc:  # noqa: BLE001 - a failing tile is a result
            print(f"{tile:>18} FAILED {type(exc).__name__}: {str(exc)[:200]}", flush=True)


def _picked(case, kind) -> str:
    """The pick of the case's `<op>_{kind}_tuned` autotuner for its last key, as a tile
    string with STAGES; "-" before it has tuned."""
    tuner = next((v for k, v in vars(case.tv).items() if k.endswith(f"_{kind}_tuned")), None)
    config = getattr(tuner, "best_config", None)
    if config is None:
        return "-"
    kw = config.kwargs
    vec = 0 if kw["VEC"] == kw["BC"] else kw["VEC"]
    return ",".join(str(v) for v in (kw["BT"], kw["BC"], vec, kw["PREFETCH"],
                                      config.num_warps, kw.get("STAGES", 1)))


def profile(case, opts, label, fb=False):
    """Per-kernel device time of one call (torch.profiler), and the host time per call;
    `fb`: of a forward+backward."""
    try:
        _profile(case, opts, label, case.fwdbwd if fb else case.fwd)
    except Exception as exc:  # noqa: BLE001 - a failing profile is a result
        print(f"profile {label} FAILED {type(exc).__name__}: {str(exc)[:200]}", flush=True)


def _profile(case, opts, label, call):
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as prof

    if DRY:
        call(**opts)
        return
    for _ in range(3):
        call(**opts)
    torch.cuda.synchronize()
    with prof(activities=[ProfilerActivity.CUDA]) as p:
        for _ in range(10):
            call(**opts)
        torch.cuda.synchronize()
    print(f"\n## profile {label} (10 calls); autotuned forward "
          f"{_picked(case, 'fwd')}, backward {_picked(case, 'bwd')}")
    for e in p.key_averages():
        if e.device_time_total > 0:
            print(f"  {e.key[:60]:60} {e.count:4d} x {e.device_time_total / e.count:9.1f} us")
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(200):
        call(**opts)
    host = (time.perf_counter() - t0) / 200 * 1e6
    torch.cuda.synchronize()
    print(f"  host enqueue time per call (no sync): {host:.1f} us")


def main(parts):
    measure = timer(DEVICE)
    bw = copy_bandwidth(DEVICE, measure)
    name = "cpu (dry run)" if DRY else torch.cuda.get_device_name()
    print(f"{name}: copy bandwidth {bw / 1e9:.0f} GB/s")
    bf16, fp32 = torch.bfloat16, torch.float32
    if "b8" in parts:
        case = Case(f"{S}/linear_scan.scan", B8, bf16)
        sweep(case, FWD_BF16, bw, measure)
        sweep(case, FWD_BF16[:10], bw, measure, {"fused": "auto"})
    if "fp32" in parts:
        sweep(Case(f"{S}/linear_scan.scan", B8, fp32), FWD_FP32, bw, measure)
    if "fp32s" in parts:
        case = Case(f"{S}/linear_scan.scan", B8, fp32)
        baseline(case, bw, measure)
        for stages in (3, 4):
            sweep(case, FP32_STAGES, bw, measure, {"fused": True, "stages": stages})
    if "log" in parts:
        case = Case(f"{S}/log_scan.scan", B8, bf16)
        for lower in (True, False):
            sweep(case, LOG_BF16, bw, measure, {"log_lowering": lower})
    if "bwd" in parts:
        sweep_bwd(Case(f"{S}/linear_scan.scan", B8, fp32), BWD_ONLY_FP32, bw, measure)
        case = Case(f"{S}/linear_scan.scan", B8, bf16)
        sweep_bwd(case, BWD_ONLY_BF16, bw, measure)
        sweep(case, BWD_BF16, bw, measure, fb=True)
        profile(case, {}, "B8 bf16 forward+backward, default (autotuned)", fb=True)
        profile(case, _options("16,256,2,1,4"), "B8 bf16 forward+backward 16,256,2,1,4",
                fb=True)
    if "stages" in parts:
        case = Case(f"{S}/linear_scan.scan", B8, bf16)
        baseline(case, bw, measure)
        sweep_bwd(case, STAGES_BWD_BF16, bw, measure)
        sweep(case, STAGES_FWD_BF16, bw, measure, fb=True, graph=True)
        profile(case, {}, "B8 bf16 forward+backward, default (autotuned)", fb=True)
    if "stages32" in parts:
        sweep_bwd(Case(f"{S}/linear_scan.scan", B8, fp32), STAGES_BWD_FP32, bw, measure)
    if "bwd2" in parts:
        sweep_bwd(Case(f"{S}/linear_scan.scan", B8, bf16), BWD_ONLY_BF16_2, bw, measure)
    if "weights" in parts:
        for dtype, tiles in ((bf16, WEIGHTS_BF16), (fp32, WEIGHTS_FP32)):
            for name in ("linear_scan", "log_scan", "tropical_scan"):
                sweep(Case(f"{S}/{name}.scan", B8, dtype), tiles, bw, measure, fb=True,
                      graph=True)
    if "first" in parts or "first0" in parts:  # first0: the default tiles only
        for dtype, tiles in ((fp32, FIRST_FP32), (bf16, FIRST_BF16)):
            case = Case(f"{S}/linear_scan.scan", B8, dtype, first=True)
            baseline(case, bw, measure)
            sweep(case, tiles if "first" in parts else [], bw, measure, fb=True)
    if "first" in parts:
        case = Case(f"{S}/linear_scan.scan", B1, bf16, first=True)
        baseline(case, bw, measure)
        sweep(case, FIRST_B1, bw, measure, graph=True)
    if "ssm" in parts:
        shape, n = ((1, 40, 16), 4) if DRY else ((8, 4096, 2048), 16)
        case = Case("ops/selective_ssm.scan", shape, bf16, N=n)
        from madc.bench import exp_rate
        rate = exp_rate(DEVICE, measure)
        floor = shape[0] * shape[1] * shape[2] * n / rate * 1e3
        print(f"\n## selective SSM exp floor {floor:.4f} ms ({rate / 1e9:.0f} G exp/s)")
        sweep(case, SSM_TILES, bw, measure, {"fused": True})
        profile(case, {"fused": True}, "selective SSM fused, default (autotuned)")
    if "b1" in parts:
        case = Case(f"{S}/linear_scan.scan", B1, bf16)
        sweep(case, B1_TILES, bw, measure, {"chunk_parallel": True}, fb=True, graph=True)
        profile(case, {"chunk_parallel": True} | _options(B1_TILES[0]), "B1 three-phase")
    if "lookback" in parts or "lookback1" in parts:  # lookback1: B=1 only
        for shape in (B1, B8) if "lookback" in parts else (B1,):
            case = Case(f"{S}/linear_scan.scan", shape, bf16)
            baseline(case, bw, measure)
            tv = case.tv
            defaults = tv.LOOKBACK_WINDOW, tv.LOOKBACK_PER_SM
            for window in LOOKBACK_WINDOWS if shape == B1 else defaults[:1]:
                tv.LOOKBACK_WINDOW = window
                print(f"\n# look-back window {window}", flush=True)
                sweep(case, LOOKBACK if shape == B1 else LOOKBACK[:2], bw, measure,
                      {"chunk_parallel": "lookback"}, graph=True)
            tv.LOOKBACK_WINDOW = defaults[0]
            for per_sm in LOOKBACK_PER_SM if shape == B1 else ():
                tv.LOOKBACK_PER_SM = per_sm
                print(f"\n# look-back pieces for {per_sm} programs per SM", flush=True)
                sweep(case, LOOKBACK[:2], bw, measure, {"chunk_parallel": "lookback"},
                      graph=True)
            tv.LOOKBACK_PER_SM = defaults[1]
            profile(case, {"chunk_parallel": "lookback"} | _options(LOOKBACK[0]),
                    f"{case.label} look-back")
    if "depth" in parts:
        case = Case(f"{S}/linear_scan.scan", B8, bf16)
        sweep(case, DEPTH_FWD_BF16, bw, measure)
        sweep_bwd(case, DEPTH_BWD_BF16, bw, measure)
        fp = Case(f"{S}/linear_scan.scan", B8, fp32)
        sweep(fp, DEPTH_FWD_FP32, bw, measure)
        sweep_bwd(fp, DEPTH_BWD_FP32, bw, measure)
        sweep(Case(f"{S}/log_scan.scan", B8, bf16), DEPTH_LOG_BF16, bw, measure)
    if "rows" in parts:  # every autotune row, unfused and fused (bf16)
        case = Case(f"{S}/linear_scan.scan", B8, bf16)
        rows = [",".join(str(v or 0) for v in r) for r in case.tv._FWD_ROWS]
        sweep(case, rows, bw, measure)
        sweep(case, rows, bw, measure, {"fused": True})
    if "v4" in parts:
        sweep(Case(f"{S}/linear_scan.scan", B8, bf16), V4_BF16, bw, measure)
    if "ab" in parts:
        for dtype, tiles in ((bf16, AB_BF16), (fp32, AB_FP32)):
            case = Case(f"{S}/linear_scan.scan", B8, dtype)
            sweep(case, tiles, bw, measure)
            sweep(case, tiles, bw, measure, {"fused": True})
        case = Case(f"{S}/tropical_scan.scan", B8, bf16)
        sweep(case, AB_BF16[:4], bw, measure)
        sweep(case, AB_BF16[:4], bw, measure, {"fused": True})
        case = Case(f"{S}/log_scan.scan", B8, bf16)
        sweep(case, DEPTH_LOG_BF16[:2], bw, measure, {"fused": True})
    if "host" in parts:
        host(Case(f"{S}/linear_scan.scan", B1, bf16), {"chunk_parallel": True},
             "the B1 three-phase forward")
        host(Case(f"{S}/linear_scan.scan", B8, bf16), {"fused": "auto"},
             "the B8 forward (fused, autotuned)")


def host(case, opts, label):
    """Where the host's time per call goes: cProfile of 300 calls, top 25 by own time."""
    import cProfile
    import pstats

    sync = (lambda: None) if DRY else torch.cuda.synchronize
    for _ in range(5):
        case.fwd(**opts)
    sync()
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(3 if DRY else 300):
        case.fwd(**opts)
    prof.disable()
    sync()
    print(f"\n## host profile, 300 calls of {label}")
    pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main(set(sys.argv[1:]))
