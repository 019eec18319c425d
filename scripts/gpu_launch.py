"""Host time per call of each layer of a madc forward, on a GPU machine.

    python scripts/gpu_launch.py

Shapes are small enough that the GPU never holds the host back, so the time to enqueue a call
(no synchronisation inside the loop) is the host's: the module call, the backend's `scan`,
the forward launcher, the look-back launcher, one Triton launch of the forward kernel, the
same kernel's `CompiledKernel` launch, two torch allocations and accelerated-scan's call when
it is importable (docs/triton.md, "Session 14").
"""

from __future__ import annotations

import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpu_tiles as g  # noqa: E402


def per_call(label, fn, n=400):
    """Print the host time per call of `fn` (enqueued, then with the final sync)."""
    try:
        for _ in range(20):
            fn()
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(n):
            fn()
        host = (time.perf_counter() - t) / n * 1e6
        torch.cuda.synchronize()
        wall = (time.perf_counter() - t) / n * 1e6
        print(f"{label:>40}: {host:7.1f} us per call enqueued ({wall:7.1f} with the sync)",
              flush=True)
    except Exception as exc:  # noqa: BLE001 - a failing layer is a result
        print(f"{label:>40}: FAILED {type(exc).__name__}: {str(exc)[:300]}", flush=True)


def main():
    for shape, label in (((1, 2048, 256), "B1 look-back"), ((8, 64, 4096), "B8 fused")):
        layers(shape, label)


def layers(shape, label):
    """Every layer's host time for one shape of examples/scans/linear_scan.scan in bf16."""
    case = g.Case(f"{g.S}/linear_scan.scan", shape, torch.bfloat16)
    tv, mod = case.tv, case.mod
    print(f"## {label} {shape}")
    B, T, C = shape
    a = case.inputs["a"].reshape(-1, C)
    b = case.inputs["b"].reshape(-1, C)
    seg, uniform = tv._segments((B, T), None, a.device)
    h0 = torch.zeros(B, C, dtype=torch.float32, device=a.device)
    hs, ht = torch.empty_like(a), torch.empty(B, C, dtype=a.dtype, device=a.device)
    tile = dict(BT=32, BC=128, VEC=2, PREFETCH=1, num_warps=2)
    meta = dict(tile, LOWER=False, EVEN=True, ROW=C)
    grid = (C // 128, B)
    kernel = tv.linear_scan_fwd_kernel
    with torch.no_grad():
        per_call("module call", lambda: mod(**case.inputs))
        per_call("tv.scan", lambda: tv.scan(case.inputs, case.params, case.dims, None,
                                            None))
        per_call("tv.linear_scan_fwd", lambda: tv.linear_scan_fwd(a, b, h0, seg, uniform,
                                                                  {}))
        per_call("look-back launcher",
                 lambda: tv.linear_scan_lookback(a, b, h0, hs, ht, uniform, tile))
        per_call("Triton launch",
                 lambda: kernel[grid](a, b, h0, hs, None, None, ht, seg, C, **meta))
        compiled = kernel[grid](a, b, h0, hs, None, None, ht, seg, C, **meta)
        args = (a, b, h0, hs, None, None, ht, seg, C, 32, 128, 2, 1, False, True, C)
        per_call("CompiledKernel launch", lambda: compiled[grid + (1,)](*args))
        per_call("torch.empty_like", lambda: torch.empty_like(a))
        per_call("torch.full", lambda: torch.full((1 + 3 * 264 * C,), -1,
                                                  dtype=torch.int32, device=a.device))
        from madc import anchors
        found = anchors.diagonal_anchors(case.inputs["a"], case.inputs["b"])
        if "accelerated-scan" in found:
            fn, fargs = found["accelerated-scan"]
            per_call("accelerated-scan", lambda: fn(*fargs))


if __name__ == "__main__":
    main()
