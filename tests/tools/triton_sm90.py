"""Compile every Triton kernel a spec launches for a real GPU target (sm_90), without a GPU.

The CPU interpreter (`TRITON_INTERPRET=1`) runs kernels as Python and accepts code the Triton
compiler rejects (a non-constexpr global read inside a kernel, say). This tool closes that gap:

    python triton_sm90.py record SPEC JOBS   # under TRITON_INTERPRET=1: run the Triton backend
                                             # (forward with and without grad, backward; the
                                             # vector backend's chunk-parallel variant too) and
                                             # record each kernel's launch arguments
    python triton_sm90.py compile JOBS       # without the interpreter: triton.compile each
                                             # kernel for GPUTarget("cuda", 90, 32) (PTX+cubin)

`compile` prints one line per kernel and exits 1 if any kernel fails to compile.

    python triton_sm90.py ptx JOBS KERNEL [NAME=VALUE ...]
                                             # one recorded kernel with meta-parameters or
                                             # argument dtypes overridden (BT=32, p_a=@bfloat16,
                                             # num_warps=2), pointers 16-byte aligned as on a
                                             # GPU: ptxas's registers and spills, then the PTX
                                             # instructions per source line, most first
                                             # (MADC_PTX_OUT=FILE also writes the PTX,
                                             # MADC_TTGIR_OUT=FILE the layouts' IR), and
                                             # the SASS of its longest loop per opcode

The `ptx` mode is how session 6 found the backward's lane shuffles, its spilling tiles and the
fused selective SSM's instruction count without a GPU (docs/triton.md).
"""

from __future__ import annotations

import importlib
import os
import pickle
import sys
from pathlib import Path

_OPTIONS = ("num_warps", "num_stages", "num_ctas", "maxnreg")


def _dtype_name(dtype) -> str:
    return str(dtype).removeprefix("torch.")


def record(spec: str, jobs_path: str) -> int:
    """Run the spec's Triton backend in the interpreter; pickle (file, kernel, args)."""
    import torch
    import triton.runtime.interpreter as interp

    import madc

    launches: dict = {}
    original = interp.InterpretedFunction.run

    def run(self, *args, grid, warmup, **kwargs):
        bound = dict(zip(self.arg_names, args)) | kwargs
        values = {k: ("tensor", _dtype_name(v.dtype)) if isinstance(v, torch.Tensor)
                  else ("dtype", _dtype_name(v)) if isinstance(v, torch.dtype) else v
                  for k, v in bound.items()}
        # a kernel once per variant: row-major or channels first (ROW -1), and with or
        # without its second output (p_y: max_times states saved in fp32) and step weights
        # (p_w: log/tropical, for the backward)
        key = (self.fn.__name__, values.get("ROW") == -1, values.get("p_y") is None,
               values.get("p_w") is None, bool(values.get("ASC")))
        launches.setdefault(key, (self.fn.__code__.co_filename, values))
        return original(self, *args, grid=grid, warmup=warmup, **kwargs)

    interp.InterpretedFunction.run = run
    module = madc.load(spec, backend="triton")
    gen = torch.Generator().manual_seed(0)
    heads = () if module.heads is None else (module.heads,)
    inputs = {name: torch.randn(2, 5, *heads, *shape, generator=gen)
              for name, shape in module.inputs.items()}
    with torch.no_grad():
        module(**inputs)  # the fused inference path, where a backend has one
    leaves = {name: x.clone().requires_grad_() for name, x in inputs.items()}
    out = module(**leaves)
    out = out if isinstance(out, tuple) else (out,)
    sum(o.float().sum() for o in out).backward()
    _chunk_parallel(module, inputs)
    _channels_first(module, inputs)
    jobs = [(path, key[0], values) for key, (path, values) in sorted(launches.items())]
    jobs += _tuned_configs(module, launches)
    Path(jobs_path).write_bytes(pickle.dumps(jobs))
    print(f"recorded {len(jobs)} kernel(s)")
    return 0 if jobs else 1


def _chunk_parallel(module, inputs) -> None:
    """The vector backend's chunk-parallel variants (forward and backward phases; the
    look-back forward), which the interpreter only takes when asked (`chunk_parallel=...`)."""
    try:
        tv = importlib.import_module(f"{type(module).__module__}.triton_vector")
    except ImportError:
        return
    params = dict(module.named_parameters())
    leaves = {name: x.clone().requires_grad_() for name, x in inputs.items()}
    outs, finals = tv.scan(leaves, params, module.dims, None, None, chunk_parallel=True,
                           fused=False)
    sum(o.float().sum() for o in outs + finals).backward()
    import torch

    with torch.no_grad():  # the single-pass (look-back) forward
        tv.scan(inputs, params, module.dims, None, None, chunk_parallel="lookback", fused=False)


def _channels_first(module, inputs) -> None:
    """The vector backend's channels-first kernels (inputs stored [B, D, T], read in place),
    forward and backward, in fp32 and bf16 (bf16: the forward's step weights where the
    semiring has them, else its second output where the backward saves fp32 states), and the
    backward with its rows ascending (`FIRST_BWD_ASC`)."""
    try:
        tv = importlib.import_module(f"{type(module).__module__}.triton_vector")
    except ImportError:
        return
    import torch

    params = dict(module.named_parameters())
    default = tv.FIRST_BWD_ASC
    for dtype, asc in ((torch.float32, False), (torch.bfloat16, False), (torch.float32, True)):
        tv.FIRST_BWD_ASC = asc  # the backward's rows ascending in time, or descending
        leaves = {name: x.movedim(1, -1).contiguous().movedim(-1, 1).to(dtype).requires_grad_()
                  for name, x in inputs.items()}
        try:
            outs, finals = tv.scan(leaves, params, module.dims, None, None, fused=False)
            sum(o.float().sum() for o in outs + finals).backward()
        finally:
            tv.FIRST_BWD_ASC = default


def _tuned_configs(module, launches: dict) -> list:
    """A job per autotuned kernel with its first and last configs' meta-parameters over the
    recorded launch arguments: the interpreter runs the untuned path, and a config's values
    (a meta-parameter's type, say) must compile too."""
    import triton

    jobs = []
    for sub in ("triton_vector", "triton_structured", "triton_attention"):
        try:
            mod = importlib.import_module(f"{type(module).__module__}.{sub}")
        except ImportError:
            continue
        for tuned in vars(mod).values():
            if not isinstance(tuned, triton.runtime.autotuner.Autotuner):
                continue
            name = tuned.fn.__name__
            # a channels-first autotuner (keyed by SC) over a recorded channels-first launch,
            # the others over a row-major one; without a second output where one was recorded
            first = "SC" in tuned.keys
            found = sorted((key, launch) for key, launch in launches.items()
                           if key[0] == name and key[1] == first)
            if found:
                path, values = found[-1][1]
                for cfg in (tuned.configs[0], tuned.configs[-1]):
                    jobs.append((path, name, values | cfg.kwargs | {"num_warps": cfg.num_warps}))
    return jobs


def _signature(jit, values: dict) -> tuple[dict, dict, dict]:
    import torch

    _short = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16", "float64": "fp64",
              "int32": "i32", "int64": "i64", "bool": "i1", "int8": "i8", "uint8": "u8"}
    options = {k: values[k] for k in _OPTIONS if k in values}
    signature, constexprs = {}, {}
    for p in jit.params:
        v = values.get(p.name, p.default)
        if isinstance(v, tuple) and v[0] == "dtype":
            v = getattr(torch, v[1])
        if p.is_constexpr or v is None:
            signature[p.name], constexprs[p.name] = "constexpr", v
        elif isinstance(v, tuple):
            signature[p.name] = "*" + _short[v[1]]
        elif isinstance(v, bool):
            signature[p.name] = "i1"
        elif isinstance(v, int):
            signature[p.name] = "i64" if abs(v) >= 2**31 else "i32"
        elif isinstance(v, float):
            signature[p.name] = "fp32"
        else:
            raise TypeError(f"{jit.__name__}.{p.name}: cannot type {type(v).__name__}")
    return signature, constexprs, options


def compile_all(jobs_path: str) -> int:
    """triton.compile every recorded kernel for sm_90; 1 if any fails."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    failed = 0
    for path, name, values in pickle.loads(Path(jobs_path).read_bytes()):
        kernel = _kernel(path, name)
        signature, constexprs, options = _signature(kernel, dict(values))
        try:
            compiled = triton.compile(ASTSource(fn=kernel, signature=signature,
                                                constexprs=constexprs),
                                      target=GPUTarget("cuda", 90, 32), options=options)
            print(f"ok    {name}: shared memory {compiled.metadata.shared} bytes")
        except Exception as err:  # noqa: BLE001 - report every kernel, then fail once
            failed += 1
            print(f"FAIL  {name}: {type(err).__name__}: {err}")
    return 1 if failed else 0


def _kernel(path: str, name: str):
    import triton

    package = Path(path).parent
    sys.path.insert(0, str(package.parent))
    kernel = getattr(importlib.import_module(f"{package.name}.{Path(path).stem}"), name)
    while not isinstance(kernel, triton.runtime.jit.JITFunction):  # autotuner/heuristics
        kernel = kernel.fn
    return kernel


def ptx_report(jobs_path: str, name: str, overrides: list[str]) -> int:
    """Compile one recorded kernel for sm_90a with overrides; print ptxas's resource line and
    the PTX instruction count per kernel source line. 1 if the kernel was not recorded."""
    import ast
    import collections
    import re
    import subprocess
    import tempfile

    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    found = [(p, v) for p, n, v in pickle.loads(Path(jobs_path).read_bytes()) if n == name]
    if not found:
        print(f"{name}: not among the recorded kernels")
        return 1
    # an override ROW=-1 picks the channels-first launch, p_y=@DTYPE one with a second
    # output, p_w=@DTYPE one that writes step weights
    want_first = "ROW=-1" in overrides
    want_y = any(o.startswith("p_y=@") for o in overrides)
    want_w = any(o.startswith("p_w=@") for o in overrides)
    found.sort(key=lambda pv: ((pv[1].get("ROW") == -1) != want_first,
                               (pv[1].get("p_y") is not None) != want_y,
                               (pv[1].get("p_w") is not None) != want_w))
    path, values = found[0]
    values = dict(values)
    for item in overrides:
        key, _, raw = item.partition("=")
        values[key] = ("tensor", raw[1:]) if raw.startswith("@") else ast.literal_eval(raw)
    kernel = _kernel(path, name)
    signature, constexprs, options = _signature(kernel, values)
    # a GPU launch specialises 16-byte aligned pointers and integers divisible by 16 (vector
    # loads need it): override an integer (C=4096) to get the GPU's specialisation
    attrs = {(i,): [["tt.divisibility", 16]] for i, p in enumerate(kernel.params)
             if str(signature.get(p.name, "")).startswith("*") or (
                 signature.get(p.name) in ("i32", "i64")
                 and values.get(p.name, p.default) % 16 == 0)}
    compiled = triton.compile(ASTSource(fn=kernel, signature=signature, constexprs=constexprs,
                                        attrs=attrs),
                              target=GPUTarget("cuda", 90, 32), options=options)
    ptx = compiled.asm["ptx"]
    if os.environ.get("MADC_PTX_OUT"):  # the whole PTX, to read a loop's body
        Path(os.environ["MADC_PTX_OUT"]).write_text(ptx)
    if os.environ.get("MADC_TTGIR_OUT"):  # Triton's GPU IR: the layouts it chose per tensor
        Path(os.environ["MADC_TTGIR_OUT"]).write_text(compiled.asm["ttgir"])
    bin_dir = Path(triton.__file__).parent / "backends" / "nvidia" / "bin"
    with tempfile.TemporaryDirectory() as tmp:
        src, cubin = Path(tmp) / "k.ptx", Path(tmp) / "k.cubin"
        src.write_text(ptx)
        out = subprocess.run([str(bin_dir / "ptxas"), "-arch=sm_90a", "-v", str(src), "-o",
                              str(cubin)], capture_output=True, text=True)
        sass = subprocess.run([str(bin_dir / "nvdisasm"), "-c", str(cubin)],
                              capture_output=True, text=True).stdout if cubin.exists() else ""
    if os.environ.get("MADC_SASS_OUT"):  # the whole SASS, to see where a loop spills
        Path(os.environ["MADC_SASS_OUT"]).write_text(sass)
    print(" ".join(line.split("info    : ")[-1] for line in out.stderr.splitlines()
                   if "Used" in line or "spill" in line) or out.stderr.strip())
    files, counts, kinds, where = {}, collections.Counter(), {}, None
    for line in ptx.splitlines():
        if m := re.match(r'\s*\.file\s+(\d+)\s+"([^"]+)"(?:,\s*"([^"]*)")?', line):
            files[int(m[1])] = m[2] if m[2].startswith("/") else f"{m[3] or ''}/{m[2]}"
        elif m := re.match(r"\s*\.loc\s+(\d+)\s+(\d+)", line):
            where = (int(m[1]), int(m[2]))
        elif (m := re.match(r"\s+([a-z][\w.]*)", line)) and where:
            counts[where] += 1
            kinds.setdefault(where, collections.Counter())[m[1].split(".")[0]] += 1
    total = collections.Counter()
    for k in kinds.values():
        total.update(k)
    print(f"{sum(counts.values())} PTX instructions: "
          + ", ".join(f"{k} {v}" for k, v in total.most_common()))
    print(_longest_loop(sass))
    sources = {}
    for (f, n), c in counts.most_common(25):
        if f not in sources:
            try:
                sources[f] = Path(files.get(f, "")).read_text().splitlines()
            except OSError:
                sources[f] = []
        # line 0 (no line), or a path Triton's compile cache kept from another run (a test's
        # removed temporary directory): the file's name instead of its line
        text = (sources[f][n - 1].strip()[:80] if 0 < n <= len(sources[f])
                else files.get(f, "?"))
        top = " ".join(f"{k} {v}" for k, v in kinds[(f, n)].most_common(3))
        print(f"{c:6d}  {top:32} {n}: {text}")
    return 0


def _longest_loop(sass: str) -> str:
    """The longest loop of a kernel's SASS (a label and the branch back to it; for the fused
    kernels the steady loop, for others it can be a masked tail loop): its instruction count
    per opcode, and its adds of +0.0 (`FADD Rd, RZ, Rs`: a row picked by
    a masked sum whose other rows add +0.0 rather than -0.0, which the compiler cannot fold;
    `_neg_zero` in the vector kernels, docs/triton.md session 26)."""
    import collections
    import re

    lines = sass.splitlines()
    labels = {m[1]: i for i, line in enumerate(lines) if (m := re.match(r"\s*(\.L_x_\d+):", line))}
    best = None
    for i, line in enumerate(lines):
        m = re.search(r"BRA `\((\.L_x_\d+)\)", line)
        if m and labels.get(m[1], i) < i and (best is None or i - labels[m[1]] > best[1] - best[0]):
            best = (labels[m[1]], i)
    if best is None:
        return "longest loop: none in the SASS"
    ops, zero_adds = collections.Counter(), 0
    for line in lines[best[0]:best[1] + 1]:
        m = re.match(r"\s*/\*[0-9a-f]+\*/\s+(@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)(.*)", line)
        if m:
            ops[m[2].split(".")[0]] += 1
            zero_adds += bool(m[2] == "FADD" and re.match(r"\s+R\d+, RZ, R\d+", m[3]))
    return (f"longest loop: {sum(ops.values())} SASS: "
            + ", ".join(f"{k} {v}" for k, v in ops.most_common()) + f"; adds of +0.0 {zero_adds}")


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "record":
        sys.exit(record(*sys.argv[2:4]))
    if mode == "ptx":
        sys.exit(ptx_report(sys.argv[2], sys.argv[3], sys.argv[4:]))
    sys.exit(compile_all(sys.argv[2]))
