"""Session 23's experiment: the diagonal scan `h = a * h + b` with its tiles moved by TMA.

    python3 scripts/gpu_tma_scan.py [DTYPE:BT,BC,WARPS,STAGES ...]   # on a GPU machine

A standalone prototype for the real semiring, not part of madc. madc's fused forward moves a
`[BT, BC]` tile of `[B, T, D]` with one pointer per element (register prefetch, or Triton's
`cp.async` pipeline with `stages`) and stays 1.4-1.9% behind accelerated-scan in fp32 at B8
T4096 D4096 (docs/triton.md, sessions 14-23), whose kernel reads 8 KB contiguous per program
from a channel-major copy. Here each chunk arrives as one bulk tensor copy (TMA: a host
`TensorDescriptor` of the 3-D `[B, T, D]` tensor, a `[1, BT, BC]` box, rows past the
sequence's end zero-filled) in a loop Triton pipelines over STAGES buffers, and the states
leave the same way. Each configuration prints its `do_bench` median (eager, as `madc bench`
times), its share of the I/O roofline and its largest difference from madc's forward, after
the same for madc's default forward and accelerated-scan, all in one process. Timed on an H100
in session 24: no row beat madc's forward (fp32 best 0.5508 ms against 0.5404, and
accelerated-scan 0.5315; bf16 65-79% of the roofline), so madc keeps its pointer loads.

MADC_TILES_DRY=1: tiny shapes on the CPU under TRITON_INTERPRET=1, to check the script itself.
"""

from __future__ import annotations

import importlib
import os
import sys

import torch
import triton
import triton.language as tl
import triton.testing
from triton.tools.tensor_descriptor import TensorDescriptor

DRY = os.environ.get("MADC_TILES_DRY") == "1"
DEVICE = torch.device("cpu" if DRY else "cuda")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
# (sm_90 shared memory per program: 41-49 KB at 32x64 fp32, 98 KB at 64x64, 57-74 KB at
# 32x128 bf16; 32x128 fp32 takes 115-147 KB, one program per SM, and is left out)
DEFAULT = ["fp32:32,64,1,3", "fp32:32,64,2,3", "fp32:16,64,1,3", "fp32:16,64,1,4",
           "fp32:64,64,2,3", "fp32:16,128,2,4", "bf16:32,128,2,3", "bf16:32,128,4,4"]


@triton.jit
def _combine(a1, b1, a2, b2):
    return a1 * a2, a2 * b1 + b2


@triton.jit
def tma_scan_kernel(d_a, d_b, d_h, p_h0, p_ht, T, D, BT: tl.constexpr, BC: tl.constexpr,
                    STAGES: tl.constexpr):
    # one program per (channel block, sequence): walks T in chunks of BT rows, each moved by
    # one TMA load per input into shared memory (STAGES chunks in flight), scanned in
    # registers from the carried state, its states stored by TMA
    i_c, i_n = tl.program_id(0), tl.program_id(1)
    o_c = i_c * BC + tl.arange(0, BC)
    b_h = tl.load(p_h0 + i_n * D + o_c, mask=o_c < D, other=0.0)  # [BC] fp32
    for t0 in tl.range(0, T, BT, num_stages=STAGES):
        b_a = d_a.load([i_n, t0, i_c * BC]).reshape(BT, BC).to(tl.float32)
        b_b = d_b.load([i_n, t0, i_c * BC]).reshape(BT, BC).to(tl.float32)
        b_A, b_B = tl.associative_scan((b_a, b_b), 0, _combine)
        b_hs = b_A * b_h[None, :] + b_B
        d_h.store([i_n, t0, i_c * BC], b_hs.to(d_h.dtype).reshape(1, BT, BC))
        # the carried state: the chunk's last row inside the sequence (rows past T are
        # zero-filled, so their states are zero, and TMA does not store them)
        last = tl.minimum(T - t0, BT) - 1
        b_h = tl.sum(tl.where((tl.arange(0, BT) == last)[:, None], b_hs, 0.0), 0)
    tl.store(p_ht + i_n * D + o_c, b_h, mask=o_c < D)


def tma_scan(a, b, h0, BT, BC, warps, stages):
    """States `[B, T, D]` (a's dtype) and the final state `[B, D]` (fp32) of `h = a*h + b`
    from `h0 [B, D]` (fp32), moved by TMA in `[1, BT, BC]` boxes."""
    B, T, D = a.shape
    hs = torch.empty_like(a)
    ht = torch.empty(B, D, dtype=torch.float32, device=a.device)
    box = [1, BT, BC]
    descs = [TensorDescriptor.from_tensor(x, box) for x in (a, b, hs)]
    tma_scan_kernel[(triton.cdiv(D, BC), B)](*descs, h0, ht, T, D, BT=BT, BC=BC,
                                              STAGES=stages, num_warps=warps)
    return hs, ht


def main(configs):
    import madc
    from madc import anchors
    from madc.bench import copy_bandwidth, timer

    B, T, D = (2, 37, 16) if DRY else (8, 4096, 4096)
    mod = madc.load("examples/scans/linear_scan.scan", backend="triton", D=D).to(DEVICE)
    tv = importlib.import_module(type(mod).__module__ + ".triton_vector")
    measure = timer(DEVICE)
    bw = copy_bandwidth(DEVICE, measure)
    by_dtype: dict = {}
    for cfg in configs:
        by_dtype.setdefault(cfg.split(":")[0], []).append(cfg)
    for name, cfgs in by_dtype.items():
        dt = DTYPES[name]
        gen = torch.Generator(device="cpu").manual_seed(0)
        a = torch.sigmoid(torch.randn(B, T, D, generator=gen) + 2).to(DEVICE, dt)
        b = torch.randn(B, T, D, generator=gen).to(DEVICE, dt)
        h0 = torch.randn(B, D, generator=gen).to(DEVICE)
        roof = 3 * a.numel() * a.element_size() / bw * 1e3
        with torch.no_grad():
            (ref,), (rt,) = tv.scan({"a": a, "b": b}, {}, mod.dims, [h0], None)
            ms = measure(lambda: tv.scan({"a": a, "b": b}, {}, mod.dims, [h0], None))  # noqa: B023
        print(f"\n## {name} B{B} T{T} D{D}: roofline {roof:.4f} ms; madc default {ms:.4f} ms "
              f"({roof / ms:.1%})", flush=True)
        for anchor, (fn, args) in anchors.diagonal_anchors(a, b).items():
            if "accelerated" in anchor:
                t = measure(lambda fn=fn, args=args: fn(*args))
                print(f"{anchor}: {t:.4f} ms ({roof / t:.1%})", flush=True)
        for cfg in cfgs:
            BT, BC, warps, stages = map(int, cfg.split(":")[1].split(","))
            try:
                hs, ht = tma_scan(a, b, h0, BT, BC, warps, stages)
                err = max(((hs.float() - ref.float()).abs().max() / ref.float().abs().max()).item(),
                          ((ht - rt.float()).abs().max() / rt.float().abs().max()).item())
                t = measure(lambda: tma_scan(a, b, h0, BT, BC, warps, stages))  # noqa: B023
                print(f"tma {cfg}: {t:.4f} ms ({roof / t:.1%}); largest relative difference "
                      f"{err:.1e}", flush=True)
            except Exception as exc:  # noqa: BLE001 - a failing configuration is a result
                print(f"tma {cfg}: FAILED {type(exc).__name__}: {str(exc)[:300]}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or DEFAULT)
