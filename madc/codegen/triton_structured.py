"""Triton backend for vector states with structured transitions (`Transition.side` left/right).

`supports(ir)` says whether every state update of a spec is a structured product this backend
lowers; `emit(ir)` returns the source of the emitted module `triton_structured.py` (the
template `codegen/triton_structured.py.j2` filled in). The emitted `scan(...)` follows
`docs/runtime.md`. How the kernels work, the compact layouts per structure class and the
derived backward are in `docs/structured.md`.

Lowering choices, all read off the IR, never off names:

* the layout of A_t: column form (index + value per column) for products of diag, perm,
  onehot and signed_perm (permutation, monomial, signed permutation, column one-hot x
  diagonal); the [nb, k, k] blocks for block_diag products; the first column for a single
  circulant; a dense [n, n] matrix for everything else (dense, toeplitz, monarch,
  circulant-diagonal products, identity - outer: the classes promotion makes dense);
* the semiring's Triton ops from `Semiring.facts` (add: +, max, min, logaddexp; mul: *, +,
  min, max) together with their Jacobians, which are the closed forms of the derivatives
  `madc.backward.partials` derives with sympy (ties split evenly, zero-guarded softmax
  weights for logaddexp).
"""

from __future__ import annotations

from pathlib import Path

import jinja2

from madc import ir
from madc.codegen.torch_print import (
    CodegenError,
    HelperSpelling,
    SemiringSpelling,
    TorchPrinter,
)
from madc.codegen.triton_structured_torch import (
    RUNTIME_HELPERS,
    UnsupportedError,
    semiring_facts_supported,
    semiring_helpers,
    wrap,
)

__all__ = ["supports", "why_unsupported", "emit", "layout_of", "UnsupportedError"]

TEMPLATE = "triton_structured.py.j2"
KERNELS_TEMPLATE = "triton_structured_kernels.py.j2"
_COLUMN_KINDS = frozenset({"diag", "perm", "onehot", "signed_perm"})
_KINDS = _COLUMN_KINDS | {"block_diag", "circulant", "toeplitz", "dense", "monarch",
                          "identity_minus_outer"}
_REAL_ONLY = frozenset({"signed_perm", "identity_minus_outer"})

# Triton bodies of the semiring ops and their Jacobians, by derived fact. `r` is the op's
# result; "-inf" guards make the logaddexp weights 0 where every term is the semiring zero.
_TL_ADD = {
    "add_is_plus": dict(
        add="return x + y",
        reduce="return tl.sum(s, axis=AXIS)",
        dadd="one = tl.zeros_like(r) + 1.0\nreturn one, one",
        dreduce="return tl.where(m, tl.zeros_like(s) + 1.0, 0.0)"),
    "add_is_max": dict(
        add="return tl.maximum(x, y)",
        reduce="return tl.max(s, axis=AXIS)",
        dadd="dx = tl.where(x > y, 1.0, tl.where(x == y, 0.5, 0.0))\n"
             "dy = tl.where(y > x, 1.0, tl.where(x == y, 0.5, 0.0))\nreturn dx, dy",
        dreduce=None),
    "add_is_min": dict(
        add="return tl.minimum(x, y)",
        reduce="return tl.min(s, axis=AXIS)",
        dadd="dx = tl.where(x < y, 1.0, tl.where(x == y, 0.5, 0.0))\n"
             "dy = tl.where(y < x, 1.0, tl.where(x == y, 0.5, 0.0))\nreturn dx, dy",
        dreduce=None),
    "add_is_logaddexp": dict(
        add='mx = tl.maximum(x, y)\nms = tl.where(mx == float("-inf"), 0.0, mx)\n'
            "return ms + tl.log(tl.exp(x - ms) + tl.exp(y - ms))",
        reduce='mx = tl.max(s, axis=AXIS)\nms = tl.where(mx == float("-inf"), 0.0, mx)\n'
               "return ms + tl.log(tl.sum(tl.exp(s - tl.expand_dims(ms, AXIS)), axis=AXIS))",
        dadd='dead = r == float("-inf")\n'
             "return tl.where(dead, 0.0, tl.exp(x - r)), tl.where(dead, 0.0, tl.exp(y - r))",
        dreduce='rr = tl.expand_dims(r, AXIS)\n'
                'return tl.where(m & (rr != float("-inf")), tl.exp(s - rr), 0.0)'),
}
# A selective (+) (max/min) sends the adjoint to the terms equal to the result, split evenly
# between ties: what torch.amax/amin do, and the n-ary form of Heaviside(0) = 1/2.
_TIES = ("e = ((s == tl.expand_dims(r, AXIS)) & m).to(tl.float32)\n"
         "c = tl.maximum(tl.sum(e, axis=AXIS), 1.0)\n"
         "return e / tl.expand_dims(c, AXIS)")
_TL_MUL = {
    "mul_is_times": ("return x * y", "return y + tl.zeros_like(x), x + tl.zeros_like(y)"),
    "mul_is_plus": ("return x + y", "one = tl.zeros_like(x + y) + 1.0\nreturn one, one"),
    "mul_is_min": ("return tl.minimum(x, y)",
                   "dx = tl.where(x < y, 1.0, tl.where(x == y, 0.5, 0.0))\n"
                   "dy = tl.where(y < x, 1.0, tl.where(x == y, 0.5, 0.0))\nreturn dx, dy"),
    "mul_is_max": ("return tl.maximum(x, y)",
                   "dx = tl.where(x > y, 1.0, tl.where(x == y, 0.5, 0.0))\n"
                   "dy = tl.where(y > x, 1.0, tl.where(x == y, 0.5, 0.0))\nreturn dx, dy"),
}


def why_unsupported(scan_ir: ir.ScanIR) -> str | None:
    """None when this backend can run `scan_ir`, else a one-line reason."""
    reason = semiring_facts_supported(scan_ir.semiring)
    if reason:
        return reason
    real = {"add_is_plus", "mul_is_times"} <= scan_ir.semiring.facts
    if not scan_ir.updates:
        return "the spec has no state update"
    for update in scan_ir.updates:
        tr = update.transition
        if tr.side not in ("left", "right"):
            return f"state {update.state}: an elementwise transition (the vector-state backend)"
        if not tr.factors:
            return f"state {update.state}: a structured transition without factors"
        for factor in tr.factors:
            if factor.kind not in _KINDS:
                return f"state {update.state}: unknown transition constructor {factor.kind}"
            if factor.kind in _REAL_ONLY and not real:
                return f"state {update.state}: {factor.kind} needs the real semiring"
    return None


def supports(scan_ir: ir.ScanIR) -> bool:
    """Whether `emit` can generate this spec (every update structured, semiring lowerable)."""
    return why_unsupported(scan_ir) is None


def layout_of(transition: ir.Transition) -> str:
    """The compact layout the kernel reads A_t from: column, block, circ or dense."""
    kinds = {f.kind for f in transition.factors}
    if kinds <= _COLUMN_KINDS:
        return "column"
    if kinds == {"block_diag"}:
        return "block"
    if kinds == {"circulant"} and len(transition.factors) == 1:
        return "circ"
    return "dense"


def _indent(text: str, n: int = 4) -> str:
    return "\n".join(" " * n + line if line else line for line in text.splitlines())


def _triton_semiring(semiring: ir.Semiring) -> dict:
    facts = semiring.facts
    add_fact = next(f for f in _TL_ADD if f in facts)
    mul_fact = next(f for f in _TL_MUL if f in facts)
    add = _TL_ADD[add_fact]
    return dict(tl_add=add["add"], tl_reduce=add["reduce"], tl_dadd=add["dadd"],
                tl_dreduce=add["dreduce"] or _TIES, tl_mul=_TL_MUL[mul_fact][0],
                tl_dmul=_TL_MUL[mul_fact][1])


def _shape_src(shape) -> str:
    items = [f"dims[{d!r}]" if isinstance(d, str) else str(int(d)) for d in shape]
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


def _function(name: str, doc: str, body: list) -> str:
    lines = [f"def {name}(env, dims, like):", f'    """{doc}"""']
    for line in body:
        lines += wrap("    " + line)
    if not body:
        lines.append("    pass")
    return "\n".join(lines)


def _table(name: str, items: list) -> str:
    """`NAME = {k: v, ...}`, one entry per line when it does not fit on one."""
    one = f"{name} = {{{', '.join(items)}}}"
    if len(one) <= 100:
        return one
    return "\n".join([f"{name} = {{"] + [f"    {item}," for item in items] + ["}"])


def _spec_code(scan_ir: ir.ScanIR) -> str:
    """The generated, spec-specific torch code: tables, prologue, factors, readouts."""
    options = dict(names=lambda ref: f"env[{ref.name!r}]", dtype="like.dtype",
                   device="like.device", semiring=HelperSpelling("_sr_add", "_sr_mul", "_sr_sum"))
    real = TorchPrinter(scan_ir, allow_semiring=False, **options).doprint
    semi = TorchPrinter(scan_ir, **options).doprint
    inputs = [f"{i.name!r}: {tuple(i.shape)!r}" for i in scan_ir.inputs]
    params = [f"{p.name!r}: ({tuple(p.shape)!r}, {p.per_head})" for p in scan_ir.params]
    parts = [
        f"NAME = {scan_ir.name!r}",
        f"DIMS = {dict(scan_ir.dims)!r}",
        f"HEADS = {scan_ir.heads!r}",
        _table("INPUTS", inputs),
        _table("PARAMS", params),
        f"OUTPUTS = {tuple(o.name for o in scan_ir.outputs)!r}",
        "",
        "",
        _function("_prologue", "The `let` lines (real arithmetic), in source order.",
                  [f"env[{let.name!r}] = {real(let.expr)}" for let in scan_ir.lets]),
    ]
    plans = []
    for update, state in zip(scan_ir.updates, scan_ir.states):
        tr = update.transition
        written = " @ ".join(f.kind for f in tr.factors)
        args = ", ".join(real(a) for f in tr.factors for a in f.args)
        inject = semi(update.inject) if update.inject is not None else "None"
        parts += ["", "", _function(f"_factors_{state.name}",
                                    f"Arguments of {state.name}'s transition {written}.",
                                    [f"return _tensors(like, {args})[1:]"]),
                  "", "", _function(f"_inject_{state.name}",
                                    f"The term injected into {state.name} (semiring).",
                                    [f"return {inject}"])]
        acted = 2 if isinstance(tr.size, tuple) and len(tr.size) == 2 else 1
        kinds = tuple(f.kind for f in tr.factors)
        plans.append(f"    _StatePlan({state.name!r}, lambda dims: {_shape_src(state.shape)}, "
                     f"{tr.side!r}, {acted}, {kinds!r},\n"
                     f"               LAYOUT_{layout_of(tr).upper()}, _factors_{state.name}, "
                     f"_inject_{state.name}),")
    parts += ["", "", _function("_readouts", "The readouts (semiring arithmetic on states).",
                                [f"env[{r.name!r}] = {semi(r.expr)}" for r in scan_ir.readouts]),
              "", "", _function("_outputs", "The outputs (real arithmetic), in order.",
                                ["return ("
                                 + "".join(f"{real(o.expr)}, " for o in scan_ir.outputs)
                                 .rstrip(" ") + ")"]),
              "", "", "STATES = (", *plans, ")"]
    return "\n".join(parts)


def _template(name: str) -> jinja2.Template:
    root = Path(__file__).resolve().parents[2] / "codegen"
    try:
        from importlib.resources import files

        text = files("madc.templates").joinpath(name).read_text()
    except (ModuleNotFoundError, FileNotFoundError):
        text = (root / name).read_text()
    env = jinja2.Environment(keep_trailing_newline=True, undefined=jinja2.StrictUndefined,
                             autoescape=False)
    return env.from_string(text)


def emit(scan_ir: ir.ScanIR) -> str:
    """The source of the emitted module `triton_structured.py` for `scan_ir`.

    Raises `UnsupportedError` (a ValueError) with the reason when `supports(scan_ir)` is
    False or an expression cannot be printed; never returns partial code."""
    reason = why_unsupported(scan_ir)
    if reason:
        raise UnsupportedError(f"{scan_ir.name}: the structured Triton backend cannot run "
                               f"this spec: {reason}")
    from madc import __version__

    sr = scan_ir.semiring
    spelling = SemiringSpelling(sr)
    try:
        spec_code = _spec_code(scan_ir)
    except CodegenError as err:
        raise UnsupportedError(f"{scan_ir.name}: the structured Triton backend cannot print "
                               f"this spec: {err}") from err
    structures = ", ".join(sorted({u.transition.structure for u in scan_ir.updates}))
    values = dict(
        name=scan_ir.name, class_name="".join(w.capitalize() for w in scan_ir.name.split("_")),
        structures=structures, version=__version__, path=scan_ir.path or "<string>",
        source_hash=scan_ir.source_hash, semiring_name=sr.name, semiring_add=str(sr.add),
        semiring_mul=str(sr.mul), zero=spelling.zero, one=spelling.one, real=spelling.is_real,
        torch_semiring=semiring_helpers(sr), runtime_helpers=RUNTIME_HELPERS,
        spec_code=spec_code,
        input_names=", ".join(i.name for i in scan_ir.inputs) or "(none)",
        param_names=", ".join(p.name for p in scan_ir.params) or "(none)",
        dims_repr=dict(scan_ir.dims),
        **{k: _indent(v)[4:] for k, v in _triton_semiring(sr).items()},
    )
    values["kernels"] = _template(KERNELS_TEMPLATE).render(**values)
    return _template(TEMPLATE).render(**values)
