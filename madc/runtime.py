"""`madc.load`: a `.scan` spec -> a ready `torch.nn.Module` (contract: `docs/runtime.md`).

load = front end (`madc.frontend.load_spec`) -> algebra verdicts (`madc.algebra.check_ir`)
-> emitted package (`madc.codegen.package`, cached by content hash in `madc.cache`) -> import
the package by file path under a unique module name -> instantiate its module class.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import warnings
from pathlib import Path

from madc import cache
from madc.errors import CompileError, Diagnostic

BACKENDS = ("auto", "reference", "chunked", "triton")

#: Per-combine cost of a structure class with side n (what promotion to dense changes).
CLASS_COST = {
    "identity": "O(1)", "scalar": "O(1)", "diagonal": "O(n)", "permutation": "O(n)",
    "monomial": "O(n)", "signed_permutation": "O(n)", "column_onehot": "O(n)",
    "column_onehot_diagonal": "O(n)", "block_diagonal": "O(n k^2)", "circulant": "O(n log n)",
    "toeplitz": "O(n^2)", "monarch": "O(n^1.5)", "circulant_diagonal": "O(n log n)",
    "identity_minus_rank1": "O(n)", "dense": "O(n^3)",
}


class InputError(ValueError):
    """A wrong input to a compiled module: unknown or missing name, wrong shape, dtype or
    device, bad `initial_state` or `cu_seqlens`. The message names the argument and says what
    was got and what was expected."""


class PromotionWarning(UserWarning):
    """A non-closed transition class was compiled as dense (`allow_promotion=True`)."""


class UnprovenWarning(UserWarning):
    """An algebra check was neither proved nor refuted (a numeric search found no
    counterexample): the spec is compiled, as `madc check` without `--strict` allows."""


def check_algebra(ir, allow_promotion: bool = False) -> None:
    """Refuse a spec with a refuted algebra check. A refuted closure check is allowed with
    `allow_promotion` (the class is then scanned as dense, with a `PromotionWarning`)."""
    try:
        from madc.algebra import check_ir
    except ImportError:
        return
    report = check_ir(ir)
    spans = {f"closure.{u.state}": u for u in ir.updates}
    refused = []
    for check in report.checks:
        if check.verdict == "unproven":
            warnings.warn(f"{ir.path}: {check.name} is unproven ({check.detail})",
                          UnprovenWarning, stacklevel=3)
        if check.verdict != "refuted":
            continue
        update = spans.get(check.name)
        if update is not None and allow_promotion:
            cls = update.transition.structure
            warnings.warn(
                f"{ir.path}: state {update.state!r}: class {cls} is not closed under products "
                f"({check.detail}); scanning it as dense: per-combine cost "
                f"{CLASS_COST.get(cls, 'O(?)')} -> O(n^3)", PromotionWarning, stacklevel=3)
            continue
        hint = ("pass allow_promotion=True (madc compile --allow-promotion) to scan it as "
                "dense" if update is not None else None)
        span = update.span if update is not None else ir.semiring.span
        refused.append(Diagnostic(span, "E0901", f"{check.name} is refuted: {check.detail}",
                                  hint))
    if refused:
        raise CompileError(refused, ir.source, ir.path)


def _import_package(package_dir: Path, unique: str):
    """Import the package at `package_dir` as module `unique` (registered in sys.modules so
    its relative imports resolve)."""
    if unique in sys.modules:
        return sys.modules[unique]
    spec = importlib.util.spec_from_file_location(
        unique, package_dir / "__init__.py", submodule_search_locations=[str(package_dir)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[unique] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[unique]
        raise
    # Errors raised by the emitted package are madc.InputError for madc users.
    module.InputError = InputError
    return module


def emit_or_refuse(ir, **options) -> dict:
    """`emit_package(ir, **options)`, with a code-generation refusal (a construct the torch
    printers cannot lower) reported as a `CompileError` (code E0902), not a traceback."""
    from madc.codegen.package import emit_package
    from madc.codegen.torch_print import CodegenError

    try:
        return emit_package(ir, **options)
    except CodegenError as err:
        raise CompileError([Diagnostic(None, "E0902", f"cannot generate code: {err}")],
                           ir.source, ir.path) from None


def compile_to_cache(ir, backends=("reference", "chunked", "triton")) -> Path:
    """The emitted package of `ir` in the cache (compiled now if not cached yet)."""
    options = {"backends": sorted(backends)}
    key = cache.cache_key(ir.source, ir.path, options)
    found = cache.lookup(ir.name, key)
    if found is not None:
        return found
    return cache.store(ir.name, key, emit_or_refuse(ir, backends=backends))


def load_package(path_or_source, *, allow_promotion: bool = False):
    """Compile (or fetch from the cache) and import the package of a spec; returns the
    imported package module (its class is `package.<ClassName>`)."""
    from madc.frontend import load_spec

    ir = load_spec(path_or_source)
    check_algebra(ir, allow_promotion)
    package_dir = compile_to_cache(ir)
    if os.environ.get("MADC_DEBUG"):
        print(f"[madc] runtime: package {package_dir}", file=sys.stderr)
    unique = f"madc_generated.{package_dir.parent.name.replace('-', '_')}"
    if "madc_generated" not in sys.modules:
        import types

        namespace = types.ModuleType("madc_generated")
        namespace.__path__ = []
        sys.modules["madc_generated"] = namespace
    return _import_package(package_dir, unique), ir


def load(path_or_source, backend: str = "auto", *, chunk_size: int | None = None,
         allow_promotion: bool = False, **dims):
    """Compile a `.scan` spec (a path or the source text) and return its `nn.Module`.

    Args:
        path_or_source: a `.scan` file path or the spec text.
        backend: "auto" (Triton on CUDA when the spec has a Triton backend, else chunked),
            "reference", "chunked" or "triton".
        chunk_size: tokens per chunk for the chunked/Triton backends (None: their default).
        allow_promotion: compile a transition class refuted for closure as dense (warns).
        **dims: dim sizes overriding the spec's defaults.

    Raises:
        CompileError: the spec is malformed or an algebra check is refuted.
        ValueError: unknown backend or dim, or backend="triton" for a spec without one.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    package, ir = load_package(path_or_source, allow_promotion=allow_promotion)
    known = dict(ir.dims)
    for name in dims:
        if name not in known:
            raise ValueError(f"unknown dim {name!r}; {ir.name} declares "
                             f"{', '.join(known) or 'no dims'}")
    from madc.codegen.package import class_name

    cls = getattr(package, class_name(ir.name))
    return cls(backend=backend, chunk_size=chunk_size, **dims)
