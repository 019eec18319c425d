"""`madc compile`: a spec -> its emitted Python package in a folder.

    load_spec (front end) -> check_algebra (verdicts) -> emit_package (codegen) -> write

`compile_spec` is the library driver; `main_compile` the CLI command (exit 0, or 2 with the
rendered diagnostics on a bad spec or a refuted check).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

from madc.errors import CompileError

BACKEND_CHOICES = ("reference", "chunked", "triton", "all")


def compile_spec(path_or_source, out_dir, dims: dict | None = None, backends=("all",), *,
                 allow_promotion: bool = False) -> Path:
    """Compile a spec into `out_dir/<spec name>/` and return that folder.

    Args:
        path_or_source: a `.scan` path or the spec text.
        out_dir: the folder the package folder is written into (created).
        dims: dim defaults of the emitted module's constructor (`{"D": 128}`).
        backends: any of "reference", "chunked", "triton", "all" (the reference, the oracle,
            is always emitted).
        allow_promotion: accept a transition class refuted for closure (scanned as dense).

    Raises:
        CompileError: a malformed spec or a refuted algebra check.
        ValueError: an unknown dim or backend.
    """
    from madc.codegen.package import ALL_BACKENDS, write_package
    from madc.frontend import load_spec
    from madc.runtime import check_algebra, emit_or_refuse

    backends = tuple(backends)
    for b in backends:
        if b not in BACKEND_CHOICES:
            raise ValueError(f"unknown backend {b!r}; expected one of {BACKEND_CHOICES}")
    chosen = ALL_BACKENDS if "all" in backends else tuple(backends)
    ir = load_spec(path_or_source)
    dims = dict(dims or {})
    known = dict(ir.dims)
    for name in dims:
        if name not in known:
            raise ValueError(f"unknown dim {name!r}; {ir.name} declares "
                             f"{', '.join(known) or 'no dims'}")
    check_algebra(ir, allow_promotion)
    files = emit_or_refuse(ir, backends=chosen, dims=dims)
    if "triton" in backends and not any(name.startswith("triton_") for name in files):
        raise ValueError(f"--backend triton: no Triton code generator supports {ir.name!r} "
                         f"(its form or semiring); the PyTorch backends do")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / ir.name
    # Write next to the target, then swap it in, so a reader never sees a half-written folder.
    tmp = Path(tempfile.mkdtemp(prefix=f".{ir.name}-", dir=out_dir))
    try:
        write_package(files, tmp)
        if target.exists():
            shutil.rmtree(target)
        os.rename(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def parse_dims(items) -> dict:
    """`["D=128", "N=16"]` -> `{"D": 128, "N": 16}`; ValueError naming a bad item."""
    dims = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep or not name.strip().isidentifier():
            raise ValueError(f"--dim {item!r}: expected NAME=VALUE")
        try:
            size = int(value)
        except ValueError:
            raise ValueError(f"--dim {item!r}: the value must be a positive int") from None
        if size < 1:
            raise ValueError(f"--dim {item!r}: the value must be a positive int")
        dims[name.strip()] = size
    return dims


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="madc compile")
    p.add_argument("file", metavar="FILE")
    p.add_argument("-o", "--out", required=True, metavar="DIR")
    p.add_argument("--dim", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--backend", default="all", choices=list(BACKEND_CHOICES))
    p.add_argument("--allow-promotion", action="store_true")
    return p


def main_compile(args) -> int:
    """`madc compile FILE -o DIR [--dim NAME=VALUE]... [--backend B] [--allow-promotion]`.
    `args` is the CLI's argparse namespace or an argv list. Returns the exit code."""
    if not isinstance(args, argparse.Namespace):
        args = _parser().parse_args(list(args))
    try:
        dims = parse_dims(args.dim)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            target = compile_spec(args.file, args.out, dims, (args.backend,),
                                  allow_promotion=getattr(args, "allow_promotion", False))
        for warning in caught:
            print(f"madc compile: warning: {warning.message}", file=sys.stderr)
    except CompileError as err:
        print(err.render(), file=sys.stderr)
        return 2
    except (ValueError, OSError) as err:
        print(f"madc compile: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {target}")
    if args.backend in ("all", "triton"):
        from madc.codegen.package import triton_plan
        from madc.frontend import load_spec

        print(triton_plan(load_spec(Path(args.file), path=args.file)))
    return 0
