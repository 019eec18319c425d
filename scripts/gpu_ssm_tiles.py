"""Time the fused selective SSM's tiles and exp_mix side by side on a GPU (session 19).

    python3 scripts/gpu_ssm_tiles.py "BT,BC,WARPS,STAGES,UNROLL,SPLIT,MIX,PARAMS[,SHARE];..."

SHARE (1 unless given; session 20) is the `share` option: the SPLIT lanes of a channel compute
its softplus once per row between them. PARAMS is 32 (fp32 params, what a module call without
a gradient passes since session 19) or 16 (bf16). Each row prints its `do_bench` median at
B=8 T=4096 D=2048 N=16 bf16, its ratio to the exp floor (one exp per state element at the
rate `madc bench` measures) and its largest output difference from the first row with the
same PARAMS; then the module call, autotuned, eager and as a CUDA graph. MADC_TILES_DRY=1:
tiny shapes on the CPU under TRITON_INTERPRET=1, to check the script itself.
"""

from __future__ import annotations

import importlib
import os
import sys

import torch
import triton
import triton.testing

import madc
from madc.bench import _inputs, exp_rate

DRY = os.environ.get("MADC_TILES_DRY") == "1"
DEVICE = torch.device("cpu" if DRY else "cuda")


def main(rows: str) -> None:
    B, T, D, N = (1, 20, 8, 4) if DRY else (8, 4096, 2048, 16)
    mod = madc.load("ops/selective_ssm.scan", backend="triton", D=D, N=N).to(DEVICE)
    tv = importlib.import_module(f"{type(mod).__module__}.triton_vector")
    inputs = _inputs(mod, B, T, torch.float32 if DRY else torch.bfloat16, DEVICE)
    p32 = {k: v.detach() for k, v in mod.named_parameters()}
    params = {"32": p32, "16": {k: v.to(torch.bfloat16) for k, v in p32.items()}}

    def med(fn):
        if DRY:  # runs, does not time
            fn()
            return float("nan")
        return triton.testing.do_bench(fn, warmup=25, rep=150, return_mode="median")

    floor = float("nan") if DRY else B * T * D * N / exp_rate(DEVICE, med) * 1e3
    print(f"exp floor {floor:.4f} ms", flush=True)
    first = {}
    for row in rows.split(";"):
        bt, bc, w, st, un, sp, mix, pdt, *share = row.split(",")
        opts = dict(fused=True, chunk_size=int(bt), block_channels=int(bc), num_warps=int(w),
                    stages=int(st), unroll=int(un), split=int(sp), exp_mix=int(mix),
                    share=share != ["0"])

        def call(opts=opts, p=params[pdt]):
            return tv.scan(inputs, p, mod.dims, None, None, **opts)
        try:
            with torch.no_grad():
                y = call()[0][0].float()
                ref = first.setdefault(pdt, y)
                err = ((y - ref).abs().max() / ref.abs().max()).item()
                ms = med(call)
            print(f"{row:>26} {ms:.4f} ms  {ms / floor:.3f}x  diff {err:.1e}", flush=True)
        except Exception as exc:  # noqa: BLE001 - a failing row is a result
            print(f"{row:>26} FAILED {type(exc).__name__}: {str(exc)[:300]}", flush=True)
    with torch.no_grad():
        ms = med(lambda: mod(**inputs))
        g = ms if DRY else triton.testing.do_bench_cudagraph(lambda: mod(**inputs), rep=100)
    print(f"module call {ms:.4f} ms ({ms / floor:.3f}x), graph {g:.4f} ms ({g / floor:.3f}x)",
          flush=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else
         "16,16,1,3,1,2,0,32,0;16,16,1,3,1,2,0,32;16,16,1,3,1,2,16,32;16,16,1,3,1,2,8,32;"
         "8,16,1,3,2,2,0,32,0;8,16,1,3,2,2,0,32;8,16,1,3,2,2,16,32;16,16,1,4,1,2,0,32;"
         "16,16,1,3,1,2,0,16")
