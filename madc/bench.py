"""`madc bench FILE`: time the generated kernels against the reference, torch.compile of the
chunked backend, hand-written anchors and the hardware floors, side by side in one run.

Floors (docs/triton.md):
* HBM roofline: bytes of inputs and outputs only, at the copy bandwidth measured in this run
  (`dst.copy_(src)`, read + write). Forward moves I + O; forward+backward moves 3I + 2O (the
  backward reads the coefficients, the saved outputs and their gradients, writes input grads).
* special-function floor (specs whose transition coefficient goes through `exp`): one `exp`
  per state element and token at the exp rate measured in this run.
Times are medians of `triton.testing.do_bench` on CUDA (each call launched from Python, as a
training loop does), of a perf_counter loop elsewhere; on CUDA the forward and the
forward+backward are also replayed as CUDA graphs (`do_bench_cudagraph`), which leave the
host's launch overhead out.
A diagonal real scan is also timed on inputs stored `[B, D, T]` ("madc triton, channels
first"): the layout the anchors read, which the vector backend reads in place.
Ratios are reported, never asserted.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def parse_shape(text: str, dims: dict) -> tuple:
    """`"B=8,T=4096,D=4096"` -> (B, T, dim overrides). Unknown names raise ValueError."""
    B, T, over = 2, 64, {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        if not value.strip().isdigit() or int(value) <= 0:
            raise ValueError(f"--shape: expected NAME=POSITIVE_INT, got {part!r}")
        name = name.strip()
        if name == "B":
            B = int(value)
        elif name == "T":
            T = int(value)
        elif name in dims:
            over[name] = int(value)
        else:
            raise ValueError(f"--shape: unknown dim {name!r}; expected B, T or one of "
                             f"{sorted(dims)}")
    return B, T, over


def timer(device):
    """fn -> median milliseconds: do_bench on CUDA, a perf_counter loop elsewhere."""
    import torch

    if device.type == "cuda":
        import triton.testing

        def cuda_ms(fn):
            return float(triton.testing.do_bench(fn, warmup=10, rep=60, return_mode="median"))
        return cuda_ms

    def cpu_ms(fn, reps=3):
        fn()
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times)
    del torch
    return cpu_ms


def copy_bandwidth(device, measure) -> float:
    """Bytes per second of `dst.copy_(src)` counting read + write."""
    import torch

    n = (256 << 20) if device.type == "cuda" else (4 << 20)
    src = torch.empty(n, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    ms = measure(lambda: dst.copy_(src))
    return 2 * n / (ms * 1e-3)


def exp_rate(device, measure) -> float:
    """exp evaluations per second, compute-bound (a dependent exp chain in registers)."""
    import torch

    if device.type != "cuda":
        x = torch.rand(1 << 16, device=device)
        return x.numel() * 8 / (measure(lambda: [torch.exp(x) for _ in range(8)]) * 1e-3)
    import triton
    import triton.language as tl

    @triton.jit
    def exp_chain_kernel(p_x, p_y, ITERS: tl.constexpr, BLOCK: tl.constexpr):
        o = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        b_x = tl.load(p_x + o)
        for _ in range(ITERS):
            b_x = tl.exp(-b_x)
        tl.store(p_y + o, b_x)

    n, iters, block = 1 << 24, 64, 1024
    x = torch.rand(n, device=device)
    y = torch.empty_like(x)
    ms = measure(lambda: exp_chain_kernel[(n // block,)](x, y, ITERS=iters, BLOCK=block))
    return n * iters / (ms * 1e-3)


def _inputs(mod, B, T, dtype, device, seed=0):
    import torch

    g = torch.Generator(device="cpu").manual_seed(seed)
    heads = (mod.heads,) if mod.heads else ()
    out = {}
    for name, shape in mod.inputs.items():
        x = torch.randn((B, T) + heads + tuple(shape), generator=g)
        if name in ("a", "g") or name.startswith("log"):
            x = -x.abs() * 0.1 if name != "a" else torch.sigmoid(x + 2.0)
        out[name] = x.to(device=device, dtype=dtype)
    return out


def _exp_in_coefficients(ir) -> bool:
    """True when a transition coefficient is computed through `exp` (fused-SSM floor)."""
    from madc import ir as I

    lets = {let.name: let.expr for let in ir.lets}

    def has_exp(e, seen=()):
        if isinstance(e, I.Call) and e.fn == "exp":
            return True
        if isinstance(e, I.Ref) and e.kind == "let" and e.name in lets and e.name not in seen:
            return has_exp(lets[e.name], seen + (e.name,))
        return any(has_exp(c, seen) for c in getattr(e, "args", ()) or ()) or any(
            has_exp(getattr(e, f), seen) for f in ("x", "y") if hasattr(e, f))
    return any(u.transition.coeff is not None and has_exp(u.transition.coeff)
               for u in ir.updates)


def _fwd_bwd(call, inputs, params):
    import torch

    leaves = [x for x in list(inputs.values()) + list(params) if x.requires_grad]
    # dL/d(outputs) is an input of the backward, made once outside the timed call (the
    # roofline counts it as read, not written)
    outs = call()
    grads = [torch.ones_like(o) for o in (outs if isinstance(outs, tuple) else (outs,))]
    del outs

    def run():
        outs = call()
        outs = outs if isinstance(outs, tuple) else (outs,)
        torch.autograd.backward(outs, grads)
        for leaf in leaves:
            leaf.grad = None
    return run


def autotuned(package: str) -> dict:
    """What the autotuners of a generated module (`package`, its Triton submodules) picked in
    this process: kernel -> {autotune key: "NAME=value,...,num_warps=w"}. A bench that reads
    slower than an earlier run can then be told apart from one whose autotune picked another
    tile."""
    from triton.runtime.autotuner import Autotuner

    out = {}
    for modname, module in sorted(sys.modules.items()):
        if module is None or not modname.startswith(package + "."):
            continue
        for name, obj in sorted(vars(module).items()):
            if isinstance(obj, Autotuner) and obj.cache:
                out[name] = {", ".join(map(str, key)): ",".join(
                    [f"{k}={v}" for k, v in config.kwargs.items()]
                    + [f"num_warps={config.num_warps}"]) for key, config in obj.cache.items()}
    return out


def _entry(name, fwd_ms=None, fwdbwd_ms=None, note=""):
    return {"name": name, "fwd_ms": fwd_ms, "fwdbwd_ms": fwdbwd_ms, "note": note}


def run_bench(file: str, shape: str = "", dtype: str = "bf16", backend: str = "triton",
              skip: tuple = ()) -> dict:
    """Run every comparison for one spec and shape; returns the JSON-ready result."""
    import torch

    import madc
    from madc import anchors
    from madc.frontend import load_spec

    ir = load_spec(file)
    B, T, over = parse_shape(shape, dict(ir.dims))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tdtype = getattr(torch, DTYPES[dtype])
    measure = timer(device)
    ours = madc.load(file, backend=backend, **over).to(device)
    inputs = _inputs(ours, B, T, tdtype, device)
    grads_in = {k: v.detach().clone().requires_grad_(True) for k, v in inputs.items()}
    entries = []

    def both(name, mod, note="", inputs=inputs, grads_in=grads_in):
        with torch.no_grad():  # forward alone is inference: the fused kernel where there is one
            fwd = measure(lambda: mod(**inputs))
        fb = measure(_fwd_bwd(lambda: mod(**grads_in), grads_in, mod.parameters()))
        entries.append(_entry(name, fwd, fb, note))

    def graphed(name, inputs=inputs, grads_in=grads_in):
        # the device time: replayed as a CUDA graph, the host's launch overhead (Python,
        # argument binding, several launches, autograd's engine) is left out, so the kernels'
        # time can be told from a slow host's
        if device.type != "cuda" or "graph" in skip:
            return
        import triton.testing

        with torch.no_grad():
            fwd = float(triton.testing.do_bench_cudagraph(lambda: ours(**inputs), rep=60))
        note = "device time, no host overhead"
        try:
            fb = float(triton.testing.do_bench_cudagraph(
                _fwd_bwd(lambda: ours(**grads_in), grads_in, ours.parameters()), rep=60))
        except Exception as exc:  # noqa: BLE001 - a capture failure is a result, not a crash
            fb, note = None, f"{note}; fwd+bwd capture failed: {type(exc).__name__}"
        entries.append(_entry(f"{name}, CUDA graph", fwd, fb, note))

    both(f"madc {backend}", ours)
    graphed(f"madc {backend}")
    if backend == "triton" and "materialised" not in skip and _exp_in_coefficients(ir):
        tv = importlib.import_module(f"{type(ours).__module__}.triton_vector") \
            if hasattr(ours, "dims") else None
        if tv is not None and getattr(tv, "HAS_FUSED", False):
            params = {n: p for n, p in ours.named_parameters()}
            with torch.no_grad():
                fwd = measure(lambda: tv.scan(inputs, params, ours.dims, None, None,
                                              fused=False))
            entries.append(_entry("madc triton, states materialised", fwd, None))
    if backend == "triton" and device.type == "cuda" and os.environ.get(
            "MADC_BENCH_LOOKBACK") == "1":
        # the single-pass look-back forward at every shape ("auto" takes it only where the
        # chunk-parallel variant is wanted; docs/triton.md), as a row of its own
        tv = importlib.import_module(f"{type(ours).__module__}.triton_vector") \
            if hasattr(ours, "dims") else None
        if tv is not None:
            params = {n: p for n, p in ours.named_parameters()}
            with torch.no_grad():
                fwd = measure(lambda: tv.scan(inputs, params, ours.dims, None, None,
                                              chunk_parallel="lookback", fused=False))
            entries.append(_entry("madc triton, look-back forward", fwd, None))
    if "reference" not in skip:
        ref = madc.load(file, backend="reference", **over).to(device)
        ref.load_state_dict(ours.state_dict())
        with torch.no_grad():
            fwd = measure(lambda: ref(**inputs))
        fb = measure(_fwd_bwd(lambda: ref(**grads_in), grads_in, ref.parameters())) \
            if fwd < 300 else None
        entries.append(_entry("reference (eager loop)", fwd, fb,
                              "" if fb is not None else "fwd+bwd skipped: > 300 ms fwd"))
    if "compile" not in skip and device.type == "cuda":
        chunked = madc.load(file, backend="chunked", **over).to(device)
        chunked.load_state_dict(ours.state_dict())
        compiled = torch.compile(chunked)
        try:
            both("torch.compile(chunked)", compiled)
        except Exception as exc:  # noqa: BLE001 - a compiler failure is a result, not a crash
            entries.append(_entry("torch.compile(chunked)", note=f"failed: {type(exc).__name__}"))
    diagonal = (ir.semiring.name == "real" and len(ir.states) == 1
                and len(ir.states[0].shape) == 1 and ir.heads is None)
    if diagonal and backend == "triton" and "first" not in skip:
        # the same module on inputs stored channels first ([B, D, T], the layout the anchors
        # below read, converted outside their timing), which its kernels read in place
        first = {k: v.transpose(1, 2).contiguous().transpose(1, 2) for k, v in inputs.items()}
        first_in = {k: v.detach().clone().requires_grad_(True) for k, v in first.items()}
        both("madc triton, channels first", ours, "inputs stored [B, D, T], as "
             "accelerated-scan's", first, first_in)
        graphed("madc triton, channels first", first, first_in)
    if diagonal and "anchors" not in skip:
        a = torch.sigmoid(torch.randn(B, T, dict(ir.dim_sizes(**over))[ir.states[0].shape[0]],
                                      device=device) + 2).to(tdtype)
        b = torch.randn_like(a)
        for name, (fn, args) in anchors.diagonal_anchors(a, b).items():
            fwd = measure(lambda fn=fn, args=args: fn(*args))
            gargs = tuple(x.detach().clone().requires_grad_(True) for x in args)
            try:
                fb = measure(_fwd_bwd(lambda fn=fn, gargs=gargs: fn(*gargs), {}, gargs))
            except Exception as exc:  # noqa: BLE001
                fb, name = None, f"{name} (bwd failed: {type(exc).__name__})"
            entries.append(_entry(name, fwd, fb))
    with torch.no_grad():
        outs = ours(**inputs)
    outs = outs if isinstance(outs, tuple) else (outs,)
    in_bytes = sum(x.numel() * x.element_size() for x in inputs.values())
    out_bytes = sum(x.numel() * x.element_size() for x in outs)
    bw = copy_bandwidth(device, measure)
    floor_fwd = (in_bytes + out_bytes) / bw * 1e3
    floor_fb = (3 * in_bytes + 2 * out_bytes) / bw * 1e3
    entries.append(_entry("HBM roofline (I/O bytes)", floor_fwd, floor_fb,
                          f"copy bandwidth {bw / 1e9:.0f} GB/s measured"))
    result = {"spec": ir.name, "file": str(file), "B": B, "T": T, "dims": ir.dim_sizes(**over),
              "dtype": dtype, "device": torch.cuda.get_device_name() if device.type == "cuda"
              else "cpu", "copy_bandwidth_GBps": bw / 1e9, "anchors": anchors.available()}
    floor_ms = floor_fwd
    if _exp_in_coefficients(ir):
        rate = exp_rate(device, measure)
        sizes = ir.dim_sizes(**over)
        heads = sizes[ir.heads] if ir.heads else 1
        n_state = B * T * heads * sum(math.prod(sizes[d] if isinstance(d, str) else d
                                                for d in s.shape) for s in ir.states)
        exp_ms = n_state / rate * 1e3
        entries.append(_entry("special-function floor (1 exp/state elt)", exp_ms, None,
                              f"exp rate {rate / 1e9:.0f} G/s measured"))
        result["exp_rate_Gps"] = rate / 1e9
        floor_ms = max(floor_ms, exp_ms)
    ours_fwd, ours_fb = entries[0]["fwd_ms"], entries[0]["fwdbwd_ms"]
    for e in entries:
        e["fwd_vs_madc"] = None if e["fwd_ms"] is None else e["fwd_ms"] / ours_fwd
        e["fwdbwd_vs_madc"] = None if e["fwdbwd_ms"] is None else e["fwdbwd_ms"] / ours_fb
    result["entries"] = entries
    result["autotuned"] = autotuned(type(ours).__module__)
    result["madc_fraction_of_floor_fwd"] = floor_ms / ours_fwd
    result["madc_fraction_of_hbm_fwdbwd"] = floor_fb / ours_fb
    return result


def format_table(result: dict) -> str:
    """The result as a fixed-width text table."""
    def ms(v):
        return "-" if v is None else f"{v:10.4g}"

    def ratio(v):
        return "-" if v is None else f"{v:7.3g}x"
    head = (f"{result['spec']}  B={result['B']} T={result['T']} "
            f"{','.join(f'{k}={v}' for k, v in result['dims'].items())}  {result['dtype']}  "
            f"on {result['device']}")
    lines = [head, f"{'':44} {'fwd ms':>10} {'vs madc':>8} {'fwd+bwd ms':>11} {'vs madc':>8}"]
    for e in result["entries"]:
        lines.append(f"{e['name'][:44]:44} {ms(e['fwd_ms']):>10} {ratio(e['fwd_vs_madc']):>8} "
                     f"{ms(e['fwdbwd_ms']):>11} {ratio(e['fwdbwd_vs_madc']):>8}  {e['note']}")
    lines.append(f"madc fwd at {100 * result['madc_fraction_of_floor_fwd']:.1f}% of its floor, "
                 f"fwd+bwd at {100 * result['madc_fraction_of_hbm_fwdbwd']:.1f}% of HBM roofline")
    for kernel, picks in result.get("autotuned", {}).items():
        for key, config in picks.items():
            lines.append(f"autotuned {kernel} (key {key}): {config}")
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    """Bar chart of forward and forward+backward times (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = [e for e in result["entries"] if e["fwd_ms"] is not None]
    names = [e["name"] for e in entries]
    x = range(len(entries))
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(entries)), 4.5))
    ax.bar([i - 0.2 for i in x], [e["fwd_ms"] for e in entries], 0.4, label="forward")
    ax.bar([i + 0.2 for i in x], [e["fwdbwd_ms"] or 0 for e in entries], 0.4,
           label="forward+backward")
    ax.set_yscale("log")
    ax.set_ylabel("ms (median)")
    ax.set_xticks(list(x))
    ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
    ax.set_title(f"{result['spec']} B={result['B']} T={result['T']} {result['dtype']}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main_bench(args) -> int:
    """Entry point of `madc bench`: table to stdout, JSON and PNG into `args.out`."""
    from madc.errors import CompileError

    skip = tuple(filter(None, os.environ.get("MADC_BENCH_SKIP", "").split(",")))
    try:
        result = run_bench(args.file, args.shape, args.dtype, args.backend, skip)
    except CompileError as exc:
        print(exc, file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError) as exc:
        print(f"madc bench: error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{result['spec']}_{result['dtype']}_B{result['B']}_T{result['T']}"
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, out / f"{stem}.png")
    print(format_table(result))
    print(f"wrote {out / (stem + '.json')} and {out / (stem + '.png')}")
    return 0
