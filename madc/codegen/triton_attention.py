"""Triton backend for matrix states: the chunkwise "attention form" of linear attention.

Recognises, in a `ScanIR`, states `S : [K, V]` (and normalisers `n : [K]`) updated as
`S = decay (*) S (+) outer(key, value)` with a per-token scalar decay (RetNet, Mamba-2/SSD,
mLSTM) or a decay along K (`alpha[:, None] * S`, `diag(alpha) @ S`: GLA), read out linearly
as `query @ S`; and emits `triton_attention.py`, whose `scan()` runs the tensor-core kernels of
`codegen/triton_attention_kernels.j2`. The real semiring runs them directly on log-decays; the
log semiring runs them on exp-shifted values (docs/attention.md). States sharing one decay and
one key are computed together: their values are concatenated along V (a normaliser's value is
one column).
"""

from __future__ import annotations

from dataclasses import dataclass

from madc.codegen.templates import render
from madc.codegen.torch_print import TorchPrinter, py_name, refs
from madc.ir import Binary, Call, Index, Ref, ScanIR, SMatmul, SMul, SOuter, SSum


@dataclass(frozen=True)
class Slot:
    """One state of the group: its name, value expression (None: the semiring one) and the
    number of value columns it takes (its V dim, or 1 for a [K] normaliser)."""

    name: str
    value: object
    width: object
    matrix: bool


@dataclass(frozen=True)
class AttentionForm:
    """What the emitted kernels need from the IR."""

    semiring: str  # "real" | "log"
    key_dim: object
    decay: object  # the per-K or scalar coefficient expression, or None (no decay)
    scalar_decay: bool
    key: object
    query: object
    slots: tuple  # tuple[Slot, ...] in state declaration order
    readouts: tuple  # tuple[(readout name, state name), ...]


class Unsupported(Exception):
    """The IR is not of the attention form; the message says why."""


def _semiring_kind(ir: ScanIR) -> str:
    facts = ir.semiring.facts
    if {"add_is_plus", "mul_is_times"} <= facts:
        return "real"
    if {"add_is_logaddexp", "mul_is_plus"} <= facts:
        return "log"
    if facts & {"add_is_max", "add_is_min", "idempotent_add"}:
        raise Unsupported(
            f"the {ir.semiring.name} semiring has no tensor-core form: its idempotent add "
            "(max/min) does not turn a chunk of outer products into a matrix product, so the "
            "attention form does not exist; the vector-state Triton backend runs it instead")
    raise Unsupported(f"the {ir.semiring.name} semiring is neither real (+, *) nor log "
                      "(logaddexp, +), the two with a tensor-core attention form")


def _factors(expr) -> list:
    """The operands of a chain of semiring products."""
    if isinstance(expr, SMul):
        return _factors(expr.x) + _factors(expr.y)
    return [expr]


def _product(factors):
    """Rebuild a semiring product (None for the empty product)."""
    out = None
    for f in factors:
        out = f if out is None else SMul(out, f, _broadcast(out.shape, f.shape),
                                         out.varying or f.varying)
    return out


def _broadcast(a: tuple, b: tuple) -> tuple:
    return a if len(a) >= len(b) else b


def _decay_of(update, state_shape):
    """(coefficient over K or scalar, is_scalar) of one update; None coefficient = identity."""
    tr = update.transition
    if tr.side == "right":
        raise Unsupported(f"state {update.state!r}: a decay along the value axis (S @ A) is "
                          "not implemented by the tensor-core backend (issue 5)")
    if tr.side == "left":
        if len(tr.factors) != 1 or tr.factors[0].kind != "diag":
            raise Unsupported(f"state {update.state!r}: only diag(alpha) @ S acts on the key "
                              f"axis in the attention form, got the {tr.structure} class")
        return tr.factors[0].args[0], False
    coeff = tr.coeff
    if coeff is None or tr.structure == "identity":
        return None, True
    shape = tuple(coeff.shape)
    if shape == ():
        return coeff, True
    key = state_shape[0]
    if len(state_shape) == 1 and shape == (key,):
        return coeff, False
    if len(state_shape) == 2 and shape == (key, 1):
        if isinstance(coeff, Index) and coeff.items == ("slice", "newaxis"):
            return coeff.x, False
        return Index(coeff, ("slice", 0), (key,), coeff.varying), False
    raise Unsupported(f"state {update.state!r}: the coefficient of shape {list(shape)} is not "
                      "a scalar or a vector along the key axis (alpha[:, None] * S)")


def _inject_of(update, matrix: bool):
    """(key factors, value factors) of `outer(key, value)` times scalars (or `key` times
    scalars for a normaliser)."""
    if update.inject is None:
        raise Unsupported(f"state {update.state!r} has no injected term outer(k, v)")
    factors = _factors(update.inject)
    scalars = [f for f in factors if tuple(f.shape) == ()]
    rest = [f for f in factors if tuple(f.shape) != ()]
    if matrix:
        if len(rest) != 1 or not isinstance(rest[0], SOuter):
            raise Unsupported(f"state {update.state!r}: the injected term is not outer(k, v) "
                              "(times per-token scalars)")
        key = _factors(rest[0].x)
        value = _factors(rest[0].y)
        scalars += [f for f in key if tuple(f.shape) == ()]
        key = [f for f in key if tuple(f.shape) != ()]
        return key, value + scalars
    if len(rest) != 1:
        raise Unsupported(f"state {update.state!r}: a [K] normaliser must be updated with one "
                          "key vector times scalars")
    return _factors(rest[0]), scalars


def _readout_of(readout):
    """(query, state name) of a linear readout `q @ S` / `sum(q[:, None] * S, axis=0)`."""
    e = readout.expr
    if isinstance(e, SMatmul) and isinstance(e.y, Ref) and e.y.kind == "state":
        if len(e.x.shape) == 1:
            return e.x, e.y.name
    if isinstance(e, SSum) and isinstance(e.x, SMul):
        rank = len(e.x.shape)
        for q, s in ((e.x.x, e.x.y), (e.x.y, e.x.x)):
            if not (isinstance(s, Ref) and s.kind == "state") or e.axis != -rank:
                continue
            if rank == 2 and isinstance(q, Index) and q.items == ("slice", "newaxis"):
                return q.x, s.name
            if rank == 1 and len(q.shape) == 1:
                return q, s.name
    raise Unsupported(f"readout {readout.name!r} is not a linear readout q @ S of a state")


def analyse(ir: ScanIR) -> AttentionForm:
    """The attention form of `ir`, or raise `Unsupported` with the reason."""
    semiring = _semiring_kind(ir)
    states = {s.name: tuple(s.shape) for s in ir.states}
    if not any(len(shape) == 2 for shape in states.values()):
        raise Unsupported("no matrix state S : [K, V]; the attention form needs one")
    key_dims = {shape[0] for shape in states.values() if len(shape) in (1, 2)}
    if len(key_dims) != 1 or any(len(shape) not in (1, 2) for shape in states.values()):
        raise Unsupported("every state must be [K, V] or a [K] normaliser over one key dim K")
    decays, keys, slots = set(), set(), []
    for update in ir.updates:
        shape = states[update.state]
        matrix = len(shape) == 2
        decays.add(_decay_of(update, shape))
        key, value = _inject_of(update, matrix)
        keys.add(tuple(sorted(key, key=repr)))
        slots.append(Slot(update.state, _product(value), shape[1] if matrix else 1, matrix))
    if len(decays) != 1:
        raise Unsupported("the states decay differently; the attention form shares one decay")
    if len(keys) != 1:
        raise Unsupported("the states inject different keys; the attention form shares one key")
    queries, readouts = set(), []
    for readout in ir.readouts:
        query, state = _readout_of(readout)
        queries.add(query)
        readouts.append((readout.name, state))
    if len(queries) > 1:
        raise Unsupported("the readouts use different queries; the attention form has one")
    if not readouts:
        raise Unsupported("no readout q @ S")
    (decay, scalar), = decays
    (key,) = keys
    return AttentionForm(semiring, key_dims.pop(), decay, scalar, _product(list(key)),
                         queries.pop(), tuple(slots), tuple(readouts))


def unsupported_reason(ir: ScanIR) -> str | None:
    """Why `ir` has no tensor-core attention form (None when it has one)."""
    try:
        analyse(ir)
    except Unsupported as err:
        return str(err)
    return None


def supports(ir: ScanIR) -> bool:
    """True when `ir` is a matrix-state spec this backend compiles."""
    return unsupported_reason(ir) is None


# --------------------------------------------------------------------------- emission


def _follow(expr, lets: dict):
    """expr with `let` references replaced by their definitions (at the top only)."""
    while isinstance(expr, Ref) and expr.kind == "let":
        expr = lets[expr.name]
    return expr


def _is_constant(expr) -> bool:
    """A scalar that depends on dims and literals only (it becomes the kernel's `scale`)."""
    return tuple(expr.shape) == () and not expr.varying and all(
        r.kind == "dim" for r in refs(expr))


def _split_scale(expr, lets: dict):
    """(rest, constant factor or None) of a query `x * c` with c a constant scalar."""
    top = _follow(expr, lets)
    if isinstance(top, Binary) and top.op == "mul":
        for rest, factor in ((top.x, top.y), (top.y, top.x)):
            if _is_constant(factor) and tuple(rest.shape) == tuple(top.shape):
                return rest, factor
    return expr, None


def _log_decay_code(form: AttentionForm, lets: dict, printer: TorchPrinter):
    """(source of the log-decay, the expression it reads)."""
    if form.decay is None:
        return None, None
    if form.semiring == "log":
        return printer.doprint(form.decay), form.decay
    top = _follow(form.decay, lets)
    # log(exp(x)) = x and log(sigmoid(x)) = logsigmoid(x): no exp/log round trip
    if isinstance(top, Call) and top.fn == "exp":
        return printer.doprint(top.args[0]), top.args[0]
    if isinstance(top, Call) and top.fn == "sigmoid":
        return f"F.logsigmoid({printer.tensor(top.args[0])})", top.args[0]
    return f"torch.log({printer.tensor(form.decay)})", form.decay


def _needed_lines(ir: ScanIR, exprs, upcast: bool = False) -> list:
    """Lines binding the inputs, params and lets that `exprs` read, in declaration order;
    `upcast`: bind fp32 copies of bf16/fp16 inputs and params (`_fp32` of the template)."""
    lets = {let.name: let.expr for let in ir.lets}
    needed: set = set()
    stack = [r for e in exprs if e is not None for r in refs(e)]
    while stack:
        ref = stack.pop()
        if ref.kind in ("dim", "readout", "state") or ref.name in needed:
            continue
        needed.add(ref.name)
        if ref.kind == "let":
            stack += refs(lets[ref.name])
    printer = TorchPrinter(ir)
    wrap = "_fp32({})" if upcast else "{}"
    lines = [f'{py_name(i.name)} = ' + wrap.format(f'inputs["{i.name}"]') for i in ir.inputs
             if i.name in needed]
    lines += [f'{py_name(p.name)} = ' + wrap.format(f'params["{p.name}"]') for p in ir.params
              if p.name in needed]
    lines += [f"{py_name(t.name)} = {printer.doprint(t.expr)}" for t in ir.lets
              if t.name in needed]
    return lines


def _dim_code(dim) -> str:
    return f'dims["{dim}"]' if isinstance(dim, str) else str(int(dim))


def emit(ir: ScanIR) -> str:
    """Source of the emitted package module `triton_attention.py` for `ir` (see
    docs/runtime.md for its `scan()` contract). Raises `Unsupported` for other specs."""
    form = analyse(ir)
    lets = {let.name: let.expr for let in ir.lets}
    printer = TorchPrinter(ir)
    query, scale = (form.query, None)
    if form.semiring == "real":
        query, scale = _split_scale(form.query, lets)
    decay_code, decay_expr = _log_decay_code(form, lets, printer)
    values = [slot.value for slot in form.slots]
    out_printer = TorchPrinter(ir, names=lambda r: (f'readouts["{r.name}"]' if r.kind ==
                                                    "readout" else f'_env["{r.name}"]'))
    outputs = [out_printer.doprint(o.expr) for o in ir.outputs]
    env = sorted({r.name for o in ir.outputs for r in refs(o.expr)
                  if r.kind not in ("readout", "dim", "state")})
    body = _needed_lines(ir, [query, form.key, *values, *[o.expr for o in ir.outputs]])
    # the log-decay is computed from fp32 copies: a chunk sums it over BT tokens, and its
    # bf16 rounding (relative 2^-9 of g per token) made exp(G) T * |g| * 2^-9 off
    # (a bare input or param, as GLA's g, is passed as it is: the kernels load it into fp32
    # exactly, and an fp32 copy would double the bytes read for it)
    bare = (isinstance(decay_expr, Ref) and decay_expr.kind in ("input", "param")
            and decay_code == py_name(decay_expr.name))
    decay_body = _needed_lines(ir, [decay_expr], upcast=not bare)
    one = "1.0" if form.semiring == "real" else "0.0"
    # Outputs computed from readouts (mLSTM's num / max(abs(den), 1), Mamba-2's ys + D * x)
    # read the kernel's fp32 readouts and are rounded once, at the end: rounding `den` to
    # bf16 first moved it onto the kink of max(|den|, 1) (madc fuzz, docs/attention.md).
    plain_outputs = all(isinstance(o.expr, Ref) and o.expr.kind == "readout"
                        for o in ir.outputs)
    fp32_readouts = form.semiring == "real" and not plain_outputs
    slots = [{
        "name": s.name, "matrix": s.matrix, "width": _dim_code(s.width),
        "value": printer.doprint(s.value) if s.value is not None else one,
        "rank": len(s.value.shape) if s.value is not None else 0,
    } for s in form.slots]
    first = ir.inputs[0].name
    return render(
        "triton_attention.py.j2",
        header=(f"# Generated by madc from {ir.path or '<string>'}; do not edit.\n"
                f"# source sha256: {ir.source_hash}"),
        name=ir.name,
        semiring=form.semiring,
        heads=ir.heads is not None,
        heads_dim=_dim_code(ir.heads) if ir.heads else "1",
        key_dim=_dim_code(form.key_dim),
        first=first,
        body=body,
        decay_body=decay_body,
        query=printer.doprint(query),
        query_rank=len(query.shape),
        key=printer.doprint(form.key),
        scale=f"float({printer.doprint(scale)})" if scale is not None else "1.0",
        decay=decay_code,
        scalar_decay=form.scalar_decay,
        slots=slots,
        readouts=[{"name": r, "index": [s.name for s in form.slots].index(st),
                   "matrix": form.slots[[s.name for s in form.slots].index(st)].matrix}
                  for r, st in form.readouts],
        outputs=outputs,
        fp32_readouts=fp32_readouts,
        cast_outputs=not plain_outputs,
        env=[{"name": n, "py": py_name(n)} for n in env],
        uses_hard=[f for f in ("hardmax", "hardsign") if any(f + "(" in o for o in outputs)
                   or any(f + "(" in line for line in body)],
    )
