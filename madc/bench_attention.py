"""`madc bench` for matrix-state specs: the generated attention-form kernels against
flash-linear-attention (`fla.ops.gla.chunk_gla`, `fla.ops.simple_gla.chunk_simple_gla`).

Both sides run on the same tensors in one process, timed with the median of
`triton.testing.do_bench`; the table reports ratios measured side by side. fla is optional:
without it only madc's times are printed. Run: `python -m madc.bench_attention [--quick]`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SHAPES = ((8, 4096, 16, 128, 128), (2, 16384, 16, 128, 128))


def load_module(spec: str, backend: str, **dims):
    """The spec's nn.Module from a freshly emitted package (no cache, no algebra check:
    the zoo specs are checked by the test suite)."""
    from madc.codegen.package import class_name, emit_package, write_package
    from madc.frontend import load_spec

    ir = load_spec(str(ROOT / spec))
    name = f"madc_bench_{ir.name}"
    if name in sys.modules:
        package = sys.modules[name]
    else:
        folder = Path(tempfile.mkdtemp(prefix="madc_bench_"))
        write_package(emit_package(ir, backends=("reference", "triton")), folder / name)
        sys.path.insert(0, str(folder))
        try:
            package = importlib.import_module(name)
        finally:
            sys.path.remove(str(folder))
    return getattr(package, class_name(ir.name))(backend=backend, **dims)


def time_ms(fn, grad_to_none=None) -> float:
    """Median milliseconds of `fn` (triton.testing.do_bench)."""
    import triton

    return triton.testing.do_bench(fn, grad_to_none=grad_to_none, return_mode="median")


def rel_err(a, b) -> float:
    """Norm-wise relative difference of two tensors (in fp32)."""
    return ((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-30)).item()


def _fwd_bwd(fn, leaves, do):
    def run():
        fn().backward(do)
    return time_ms(run, grad_to_none=leaves)


def load_variant(spec: str, env: dict):
    """The spec's emitted `triton_attention` module imported under extra environment
    settings (e.g. MADC_ATTENTION_SPLIT=0), to time kernel variants side by side."""
    import importlib.util
    import os

    from madc.codegen import triton_attention
    from madc.frontend import load_spec

    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        # from a file: @triton.jit reads its function's source (an exec'd string has none)
        name = f"madc_variant_{len(sys.modules)}"
        path = Path(tempfile.mkdtemp(prefix="madc_variant_")) / f"{name}.py"
        path.write_text(triton_attention.emit(load_spec(str(ROOT / spec))))
        module_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        module_spec.loader.exec_module(module)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return module


def _report(row, **values):
    row.update(values)
    print(json.dumps({"op": row["op"], **values}), flush=True)


def _fla(name):
    """An fla op, or None when fla is not importable or is switched off (--skip-fla)."""
    if SKIP_FLA:
        return None
    try:
        if name == "chunk_gla":
            from fla.ops.gla import chunk_gla as op
        else:
            from fla.ops.simple_gla import chunk_simple_gla as op
    except ImportError:
        return None
    return op


SKIP_FLA = False


def bench_gla(B, T, H, K, V, dtype=torch.bfloat16, variants=()) -> dict:
    """GLA (vector decay along K): madc `ops/gla.scan` vs fla `chunk_gla`."""
    torch.manual_seed(0)
    dev = "cuda"
    q, k = (torch.randn(B, T, H, K, device=dev, dtype=dtype) for _ in range(2))
    v = torch.randn(B, T, H, V, device=dev, dtype=dtype)
    g = torch.nn.functional.logsigmoid(torch.randn(B, T, H, K, device=dev)).to(dtype)
    do = torch.randn(B, T, H, V, device=dev, dtype=dtype)
    leaves = [x.requires_grad_() for x in (q, k, v, g)]
    mod = load_module("ops/gla.scan", "triton", H=H, K=K, V=V).cuda()
    row = {"op": "gla", "shape": f"B{B} T{T} H{H} K{K} V{V}"}
    madc_fn = lambda: mod(q=q, k=k, v=v, g=g)  # noqa: E731
    chunk_gla = _fla("chunk_gla")
    fla_fn = None if chunk_gla is None else (lambda: chunk_gla(q, k, v, g)[0])  # noqa: E731
    # the side-by-side pairs first (forward, then forward+backward): fla's first backward
    # autotunes for minutes, and a capped device call should still end with both ratios
    _report(row, madc_fwd=time_ms(madc_fn))
    if fla_fn is not None:
        _report(row, fla_fwd=time_ms(fla_fn))
        _report(row, err_o=rel_err(madc_fn(), fla_fn()))
    _report(row, madc_fwdbwd=_fwd_bwd(madc_fn, leaves, do))
    if fla_fn is not None:
        _report(row, fla_fwdbwd=_fwd_bwd(fla_fn, leaves, do))
    dims = {"H": H, "K": K, "V": V}
    for env in variants:
        scan = load_variant("ops/gla.scan", env).scan
        fn = lambda scan=scan: scan({"q": q, "k": k, "v": v, "g": g}, {}, dims)[0][0]  # noqa: E731
        _report(row, **{"variant " + json.dumps(env): time_ms(fn)})
    if fla_fn is None:
        return row
    grads = []
    for fn in (madc_fn, fla_fn):
        for x in leaves:
            x.grad = None
        fn().backward(do)
        grads.append([x.grad.clone() for x in leaves])
    _report(row, err_grads=[rel_err(a, b) for a, b in zip(*grads)])
    return row


def bench_scalar(B, T, H, K, V, dtype=torch.bfloat16) -> dict:
    """Scalar decay: madc `ops/retnet.scan` vs fla `chunk_simple_gla` (per-token g)."""
    torch.manual_seed(0)
    dev = "cuda"
    q, k = (torch.randn(B, T, H, K, device=dev, dtype=dtype) for _ in range(2))
    v = torch.randn(B, T, H, V, device=dev, dtype=dtype)
    mod = load_module("ops/retnet.scan", "triton", H=H, K=K, V=V).cuda().to(dtype)
    log_gamma = mod.log_gamma.detach().float()
    row = {"op": "scalar(retnet)", "shape": f"B{B} T{T} H{H} K{K} V{V}"}
    madc_fn = lambda: mod(q=q, k=k, v=v)  # noqa: E731
    _report(row, madc_fwd=time_ms(madc_fn))
    chunk_simple_gla = _fla("chunk_simple_gla")
    if chunk_simple_gla is None:
        return row
    g = log_gamma.view(1, 1, H).expand(B, T, H).contiguous()
    fla_fn = lambda: chunk_simple_gla(q, k, v, g=g)[0]  # noqa: E731
    _report(row, fla_fwd=time_ms(fla_fn))
    _report(row, err_o=rel_err(madc_fn(), fla_fn()))
    return row


def fla_anchors(module, inputs: dict, params: dict, dims: dict) -> dict:
    """fla kernels computing the same attention form as an emitted `triton_attention` module,
    for `madc bench`: name -> zero-argument callable returning the output. They receive the
    module's kernel operands (`module.operands`), so the spec's prologue is not timed for
    them. Empty when fla is missing or has no counterpart (log semiring, several states)."""
    query, key, value, log_decay, scale, widths, _ = module.operands(inputs, params, dims)
    if module.SEMIRING != "real" or len(widths) != 1:
        return {}
    if log_decay.dim() == 4:
        op = _fla("chunk_gla")
        return {} if op is None else {
            "fla chunk_gla": lambda: op(query, key, value, log_decay, scale=scale)[0]}
    op = _fla("chunk_simple_gla")
    return {} if op is None else {
        "fla chunk_simple_gla": lambda: op(query, key, value, g=log_decay, scale=scale)[0]}


def table(rows) -> str:
    """A plain-text table with madc/fla speedups (fla time / madc time)."""
    lines = [f"{'op':16} {'shape':28} {'madc fwd':>9} {'fla fwd':>9} {'x':>6} "
             f"{'madc f+b':>9} {'fla f+b':>9} {'x':>6} {'err_o':>8}"]
    for r in rows:
        def cell(key, r=r):
            return f"{r[key]:9.3f}" if key in r else f"{'-':>9}"

        def ratio(a, b, r=r):
            return f"{r[b] / r[a]:6.2f}" if a in r and b in r else f"{'-':>6}"

        err = f"{r['err_o']:8.1e}" if "err_o" in r else f"{'-':>8}"
        lines.append(f"{r['op']:16} {r['shape']:28} {cell('madc_fwd')} {cell('fla_fwd')} "
                     f"{ratio('madc_fwd', 'fla_fwd')} {cell('madc_fwdbwd')} "
                     f"{cell('fla_fwdbwd')} {ratio('madc_fwdbwd', 'fla_fwdbwd')} {err}")
    return "\n".join(lines)


def main(argv=None) -> int:
    """Run the GLA and scalar-decay benchmarks, print the table, optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="first shape only")
    parser.add_argument("--json", type=Path, help="write the rows here")
    parser.add_argument("--variants", action="store_true",
                        help="also time GLA forward kernel variants (split scores off, BV=128)")
    parser.add_argument("--skip-fla", action="store_true", help="time madc only")
    args = parser.parse_args(argv)
    global SKIP_FLA
    SKIP_FLA = args.skip_fla
    if not torch.cuda.is_available():
        print("bench_attention: needs a CUDA GPU", file=sys.stderr)
        return 2
    rows = []
    for shape in SHAPES[:1] if args.quick else SHAPES:
        variants = ({"MADC_ATTENTION_SPLIT": "0"}, {"MADC_ATTENTION_FWD_BV": "128"})
        rows.append(bench_gla(*shape, variants=variants if args.variants else ()))
        rows.append(bench_scalar(*shape))
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
