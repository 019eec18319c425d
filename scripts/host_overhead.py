"""madc's own host time per `scan` call of the vector backend, kernels stubbed out.

    TRITON_INTERPRET=1 python scripts/host_overhead.py [SPEC] [--dims D=256,...]
        [--pieces | --lookback | --backward | --module]

Every Triton kernel and autotuner of the emitted `triton_vector` module is replaced by a
launcher that does nothing, so what is timed is the Python and torch work around the
launches (input checks, views, allocations, tiling, piece tables), on this machine's CPU.
`--pieces` takes the three-phase chunk-parallel path (three launches), `--lookback` the
single-pass one that B=1 T=65536 takes on a GPU, `--backward` a forward+backward through
autograd (at B=8 and a small T, so only the host's work is timed), `--module` the module
call a user makes (its input checks, then `scan`; B=8 T=16) with the spec's `--dims`: what
an eager `do_bench` of a module counts as device idle time where it outlasts the L2 flush
before it (docs/triton.md, session 26).
Triton's own launch cost is not included: it needs a GPU driver (`scripts/gpu_tiles.py host`
profiles the whole call on the device).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import importlib
import pstats
import time

import torch
import triton
import triton.runtime.interpreter

import madc


class _NoLaunch:
    """Stands for a kernel or autotuner: `kernel[grid](...)` does nothing."""

    def __getitem__(self, grid):
        return lambda *args, **kwargs: None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", nargs="?", default="examples/scans/linear_scan.scan")
    path = parser.add_mutually_exclusive_group()
    path.add_argument("--pieces", action="store_true", help="the chunk-parallel path")
    path.add_argument("--lookback", action="store_true", help="the single-pass look-back")
    path.add_argument("--backward", action="store_true",
                      help="forward+backward through autograd (B=8 T=64: host time only)")
    path.add_argument("--module", action="store_true",
                      help="the module call, checks included (B=8 T=16: host time only)")
    parser.add_argument("--dims", default={"D": 256}, type=_dims,
                        help="the spec's dims, NAME=SIZE,... (default D=256)")
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    mod = madc.load(args.spec, backend="triton", **args.dims)
    tv = importlib.import_module(f"{type(mod).__module__}.triton_vector")
    kernels = (triton.runtime.jit.JITFunction, triton.runtime.autotuner.Autotuner,
               triton.runtime.interpreter.InterpretedFunction)
    for name, value in list(vars(tv).items()):
        if isinstance(value, kernels):
            setattr(tv, name, _NoLaunch())
    heads = (mod.heads,) if mod.heads else ()
    shape = (8, 64) if args.backward else (8, 16) if args.module else (1, 65536)
    inputs = {n: torch.rand(shape + heads + tuple(s), dtype=torch.bfloat16)
              for n, s in mod.inputs.items()}
    params = dict(mod.named_parameters())
    options = ({"chunk_parallel": True} if args.pieces
               else {"chunk_parallel": "lookback"} if args.lookback else {})
    if args.backward:
        step = _backward_step(tv, mod, inputs, params, options)
        what, top, grad = "forward+backward", 15, contextlib.nullcontext()
    elif args.module:
        def step():
            mod(**inputs)
        what, top, grad = "module call", 15, torch.no_grad()
    else:
        def step():
            tv.scan(inputs, params, mod.dims, None, None, **options)
        what, top, grad = "scan call", 12, torch.no_grad()
    with grad:
        for _ in range(50):
            step()
        t0 = time.perf_counter()
        for _ in range(args.calls):
            step()
        per_call = (time.perf_counter() - t0) / args.calls * 1e6
        print(f"{per_call:.1f} us per {what}, kernels stubbed ({args.spec})")
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(500):
            step()
        prof.disable()
    pstats.Stats(prof).sort_stats("tottime").print_stats(top)


def _dims(text: str) -> dict:
    """`D=2048,N=16` -> {"D": 2048, "N": 16}; argparse reports anything else."""
    try:
        return {k.strip(): int(v) for k, v in (item.split("=") for item in text.split(","))}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NAME=SIZE,..., got {text!r}") from None


def _backward_step(tv, mod, inputs, params, options):
    """One forward+backward through autograd (what `madc bench` times as fwd+bwd), kernels
    stubbed; dL/dy made once, as the bench does."""
    leaves = {k: v.clone().requires_grad_(True) for k, v in inputs.items()}
    ones = None

    def step():
        nonlocal ones
        outs, _ = tv.scan(leaves, params, mod.dims, None, None, **options)
        ones = torch.ones_like(outs[0]) if ones is None else ones
        outs[0].backward(ones)
        for x in leaves.values():
            x.grad = None
    return step


if __name__ == "__main__":
    main()
