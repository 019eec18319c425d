"""Triton backend for elementwise (identity / scalar / diagonal) transitions, any semiring.

`emit(ir)` returns the source of the emitted package module `triton_vector.py`, whose
`scan(inputs, params, dims, initial_state, cu_seqlens, **options)` follows `docs/runtime.md`.
The module holds the Triton kernels filled from `codegen/triton_vector.py.j2`:

* `<op>_fwd_kernel`: a program owns a block of channels of one sequence and walks T in chunks,
  scanning each chunk with `tl.associative_scan` and the semiring combine, carrying the state;
  semirings whose facts say `add_is_logaddexp` and `mul_is_plus` get the cumulative-sum /
  first-term-shifted linear-domain lowering (one exp and one log per element), which redoes
  the programs whose chunks leave its exact range with the generic combine in the same
  launch;
* `<op>_agg_kernel` + `<op>_carry_kernel`: phases 1-2 of the chunk-parallel variant used when
  sequences x channel blocks cannot fill the GPU (phase 3 is the forward kernel);
* `<op>_bwd_kernel`: the reverse real linear scan whose coefficients come from
  `madc.backward.scan_adjoint` (sympy derivatives of the semiring's add/mul);
* `<op>_bagg_kernel` + `<op>_bcarry_kernel`: phases 1-2 of the chunk-parallel backward (phase 3
  is the backward kernel run per piece).

The prologue (`let` lines), transition coefficients, injected terms, readouts and outputs are
printed as torch code around the kernels (by `madc.codegen.torch_print.TorchPrinter`); PyTorch
autograd differentiates them, the kernels differentiate the scan. Design and the tiling
heuristic: `docs/triton.md`.
"""

from __future__ import annotations

from pathlib import Path

from madc import backward
from madc.codegen.torch_print import (
    HELPERS_SOURCE,
    CodegenError,
    HelperSpelling,
    SemiringSpelling,
    TorchPrinter,
    refs,
    strip_parens,
)
from madc.codegen.triton_print import (
    TRITON,
    PrintError,
    SympyPrinter,
    held_axes,
    held_axis,
    place,
    semiring_op,
)
from madc.ir import ScanIR


def _printer(ir: ScanIR, semiring: bool) -> TorchPrinter:
    """The torch printer of the module's `scan`: values live in `env`, the working dtype and
    device are `dt`, `dev`, semiring nodes call the module's `_sadd`/`_smul`/`_ssum` (and are
    refused in real arithmetic, `semiring=False`)."""
    return TorchPrinter(ir, names=lambda ref: f'env["{ref.name}"]',
                        semiring=HelperSpelling("_sadd", "_smul", "_ssum"),
                        allow_semiring=semiring, dtype="dt", device="dev")


def supports(ir: ScanIR) -> bool:
    """True when every update is elementwise and every expression has a spelling here."""
    if not ir.updates or any(u.transition.side != "elementwise" for u in ir.updates):
        return False
    try:
        _context(ir)
    except CodegenError:  # PrintError (the Triton side) is one too
        return False
    return True


def _weights_code(weights: backward.StepWeights) -> dict:
    """`_adjoint_code` for a semiring with step weights: the forward computes `u`, `v` from
    its registers (`b_m`, the injected term `b_bb`, the new state `b_y`) and stores one number
    per step (`_weight`); the backward reads it at rows t (`b_w`: Da, Db) and t+1 (`b_w1`: J)
    and the first row (`b_ww0`: J for dL/dh0), and nothing else."""
    names = {backward.M: "b_m", backward.B: "b_bb", backward.H: "b_y"}
    return {
        "weights": True,
        "fwd_u": SympyPrinter(TRITON, names)(weights.u),
        "fwd_v": SympyPrinter(TRITON, names)(weights.v),
        "J1": "_wu(b_w1)", "J0": "_wu(b_ww0)", "Da": "_wu(b_w)", "Db": "_wv(b_w)",
        "load_a": False, "load_b": False, "load_h": False, "load_p": False,
        "load_a1": False, "load_b1": False, "load_h1": False, "J_load_h": False,
        "J_needs": [], "states_fp32": False,
    }


def _adjoint_code(ir: ScanIR) -> dict:
    """Triton code for the derived step adjoint: J at row t+1 (`_1` names), Da/Db at row t;
    from the step weights where the semiring has them (`_weights_code`)."""
    weights = backward.step_weights(ir.semiring)
    if weights is not None:
        return _weights_code(weights)
    adj = backward.scan_adjoint(ir.semiring)
    here = {s: n for s, n in zip((backward.A, backward.P, backward.B, backward.H, backward.M),
                                 ("b_a", "b_p", "b_b", "b_h", "b_m"))}
    nxt = {s: n + "1" for s, n in here.items()}
    nxt[backward.P] = "b_h"
    row = {s: n + "0" for s, n in here.items()}
    row[backward.P] = "b_h0"
    row[backward.H] = "b_hh0"
    need_here = adj.symbols("Da") | adj.symbols("Db")
    need_next = adj.symbols("J")
    return {
        "J1": SympyPrinter(TRITON, nxt)(adj.J),
        "J0": SympyPrinter(TRITON, row)(adj.J),
        "Da": SympyPrinter(TRITON, here)(adj.Da),
        "Db": SympyPrinter(TRITON, here)(adj.Db),
        # row t needs a/b/h/p for Da, Db; row t+1 needs what J needs (its p is row t's h).
        "load_a": bool({"a", "m"} & need_here),
        "load_b": "b" in need_here,
        "load_h": bool({"h"} & need_here or {"p", "m"} & need_next),
        "load_p": bool({"p", "m"} & need_here),
        "load_a1": bool({"a", "m"} & need_next),
        "load_b1": "b" in need_next,
        "load_h1": "h" in need_next,
        "J_load_h": bool({"p", "m"} & need_next),  # row t's state, as p of row t+1
        "J_needs": sorted(adj.symbols("J")),
        # the adjoint reads state values through a nonlinear function (log: exp(a + p - h);
        # max: an indicator): then bf16/fp16 states are saved in fp32 for the backward, since
        # one bf16 step of a state near 50 is 0.25, i.e. 25% through exp (the real semiring's
        # J = a and Da = p only need the states' relative precision)
        "states_fp32": bool({"h", "m", "p"} & need_next or {"h", "m"} & need_here),
        "weights": False,
    }


def _context(ir: ScanIR) -> dict:
    """Everything the template needs, printed."""
    sr = ir.semiring
    tp, real = _printer(ir, semiring=True), _printer(ir, semiring=False)
    spelling = SemiringSpelling(sr, fold="functools.reduce(_sadd, {x}.unbind({a}))")
    states = []
    for state, update in zip(ir.states, ir.updates):
        tr = update.transition
        rank = len(state.shape)
        states.append({
            "name": state.name,
            "shape": [d if isinstance(d, int) else f"dims[{d!r}]" for d in state.shape],
            "coeff": None if tr.coeff is None else tp.aligned(tr.coeff, rank),
            "inject": None if update.inject is None else tp.aligned(update.inject, rank),
        })
    facts = sr.facts
    return {
        "name": ir.name,
        "path": ir.path,
        "hash": ir.source_hash,
        "semiring": sr.name,
        "heads": ir.heads,
        "inputs": [(i.name, [d if isinstance(d, int) else f"dims[{d!r}]" for d in i.shape])
                   for i in ir.inputs],
        "params": [p.name for p in ir.params],
        "lets": [(let.name, real.doprint(let.expr)) for let in ir.lets],
        "states": states,
        "readouts": [(r.name, tp.doprint(r.expr)) for r in ir.readouts],
        "outputs": [(o.name, real.doprint(o.expr)) for o in ir.outputs],
        "zero": spelling.zero,
        "one": spelling.one,
        "tl_add": semiring_op(sr, "add", "x", "y", TRITON),
        "tl_mul": semiring_op(sr, "mul", "x", "y", TRITON),
        "torch_add": strip_parens(spelling.add("x", "y")),
        "torch_mul": strip_parens(spelling.mul("x", "y")),
        "torch_sum": spelling.sum("x", "axis"),
        "log_lowering": "add_is_logaddexp" in facts and "mul_is_plus" in facts,
        "adj": _adjoint_code(ir),
        "torch_helpers": HELPERS_SOURCE,
        "fused": _fused_context(ir),
    }


def _template():
    import jinja2

    here = Path(__file__).resolve().parents[2] / "codegen"
    if here.is_dir():
        loader = jinja2.FileSystemLoader(str(here))
    else:  # installed: the templates ship as the package `madc.templates`
        loader = jinja2.PackageLoader("madc.templates", ".")
    env = jinja2.Environment(loader=loader, keep_trailing_newline=True, trim_blocks=True,
                             lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    return env.get_template("triton_vector.py.j2")


def emit(ir: ScanIR) -> str:
    """Source of the emitted module `triton_vector.py` for `ir` (byte-stable per IR).

    Raises `CodegenError` (a `PrintError` from the Triton side) when the spec is outside this
    backend (see `supports`)."""
    if any(u.transition.side != "elementwise" for u in ir.updates):
        raise PrintError(f"{ir.name}: triton_vector handles elementwise transitions only")
    from madc import __version__

    return _template().render(version=__version__, **_context(ir))


def _dims_of(node, acc: set) -> set:
    for d in getattr(node, "shape", ()):
        acc.add(d)
    for child in getattr(node, "args", ()) or ():
        if not isinstance(child, (int, str)):
            _dims_of(child, acc)
    for f in ("x", "y"):
        if hasattr(node, f):
            _dims_of(getattr(node, f), acc)
    return acc


def _fused_context(ir: ScanIR) -> dict | None:
    """The fused forward kernel's code pieces, or None when the spec is outside its subset
    (one state of rank 1-2 over distinct named dims, no heads, elementwise prologue/readout
    with reductions only over non-channel dims): the unfused path then runs."""
    if len(ir.states) != 1 or ir.heads or ir.params and any(p.per_head for p in ir.params):
        return None
    shape = ir.states[0].shape
    if not 1 <= len(shape) <= 2 or len(set(shape)) != len(shape) or not all(
            isinstance(d, str) for d in shape):
        return None
    used = set()
    for node in ([i for i in ir.inputs] + [p for p in ir.params]):
        used |= set(node.shape)
    for e in ([let.expr for let in ir.lets] + [r.expr for r in ir.readouts]
              + [o.expr for o in ir.outputs]):
        _dims_of(e, used)
    if not used <= set(shape) | {1}:
        return None
    for channel in shape:
        try:
            return _fused_for(ir, shape, channel)
        except PrintError:
            continue
    return None


#: builtins that cost special-function (MUFU) ops, or many instructions, per element
_COSTLY = frozenset({"exp", "log", "sigmoid", "tanh", "silu", "softplus", "sqrt"})


def _shareable(node, channel: str) -> bool:
    """A per-token value of the channel dim alone, computed elementwise from Refs of the
    channel dim (per-token ones of that dim only), static scalars and constants, with at
    least one costly builtin: the fused kernel can compute it once per row and channel
    across the SPLIT lanes of the channel."""
    costly = False

    def walk(n) -> bool:
        nonlocal costly
        kind = type(n).__name__
        if tuple(n.shape) not in ((), (channel,)):
            return False
        if kind == "Num":
            return True
        if kind == "Ref":  # a per-token scalar's tile has no channel axis to share
            return not n.varying or tuple(n.shape) == (channel,)
        if kind == "Unary":
            return walk(n.x)
        if kind == "Binary":
            return n.op in ("add", "sub", "mul", "div") and walk(n.x) and walk(n.y)
        if kind == "Call" and n.fn in _COSTLY | {"maximum", "minimum", "clamp", "abs",
                                                  "relu"} and n.axis is None:
            costly |= n.fn in _COSTLY
            return all(walk(a) for a in n.args)
        return False

    return node.varying and tuple(node.shape) == (channel,) and walk(node) and costly


def _dim_axes(shape: tuple, swap: bool, split) -> tuple:
    """(tile rank with time, [(first tile axis, width)] per IR dim of `shape`)."""
    held = held_axes(shape, swap, split)
    at = [held[held_axis(len(shape), j, swap)] for j in range(len(shape))]
    return 1 + sum(w for _, _, w in held), [(1 + start, width) for _, start, width in at]


def _load(ptr: str, shape: tuple, varying: bool, other: str = "0.0", swap: bool = False,
          split=None) -> str:
    """A masked load of a contiguous [rows, *shape] tensor as a [BT or 1, *shape] tile.

    A varying tile's pointers are its first row's (`r0`, one int64 scalar per chunk) plus
    int64 offsets `o_t` (rows from r0) times the row stride plus the other dims' offsets;
    the sizes `n_<dim>` are constexprs where the kernel knows them (`_rows_at` and the
    kernel's preamble): the row part is then a constant per register that ptxas folds into
    the load's immediate offset. `swap`, `split`: the tile's axes (`held_axes`)."""
    rank, axes = _dim_axes(shape, swap, split)
    size = " * ".join(f"n_{d}" for d in shape) or "1"
    offs = [f"{place('o_t', rank, 0)} * ({size})"] if varying else []
    masks = [place("m_t", rank, 0)] if varying else []
    for j, d in enumerate(shape):
        stride = " * ".join(f"n_{e}" for e in shape[j + 1:]) or "1"
        ax, width = axes[j]
        offs.append(f"{place(f'o_{d}', rank, ax, width)}.to(tl.int64) * ({stride})")
        masks.append(place(f"m_{d}", rank, ax, width))
    mask = " & ".join(masks) if masks else "None"
    base = f"{ptr} + r0 * ({size})" if varying else ptr
    return f"tl.load({base} + ({' + '.join(offs) or '0'}), mask={mask}, other={other})"


def _static_load(ptr: str, shape: tuple, swap: bool, split=None) -> str:
    """A param's tile [1, *shape] in the compute dtype. With `swap`, a rank-2 param is loaded
    as a [e2, e1] tile (the split dim on its two axes) and given its time axis after: Triton
    lays a load out along its contiguous dim (here the non-channel one, the last in memory),
    and a load with the time axis would carry that layout into the loop (a state dim across
    lanes); one without it stays outside."""
    if not (swap and len(shape) == 2):
        return f"{_load(ptr, shape, False)}.to(CDT)"
    d0, d1 = shape
    rank, ((a0, w0), (a1, w1)) = _dim_axes(shape, swap, split)
    o0, o1 = place(f"o_{d0}", rank - 1, a0 - 1, w0), place(f"o_{d1}", rank - 1, a1 - 1, w1)
    m0, m1 = place(f"m_{d0}", rank - 1, a0 - 1, w0), place(f"m_{d1}", rank - 1, a1 - 1, w1)
    return (f"tl.load({ptr} + ({o0}.to(tl.int64) * (n_{d1}) + {o1}), mask={m0} & {m1}, "
            f"other=0.0).to(CDT)[{', '.join(['None'] + [':'] * (rank - 1))}]")


def _fused_for(ir: ScanIR, shape: tuple, channel: str) -> dict:
    from madc.codegen.triton_print import TilePrinter

    names = {i.name: f"v_{i.name}" for i in ir.inputs}
    names.update({p.name: f"s_{p.name}" for p in ir.params})
    names[ir.states[0].name] = "b_y"
    rank = 1 + len(shape)
    # a rank-2 state whose channel dim comes first is held with its axes exchanged: the
    # channel is then the tiles' last axis, which Triton spreads over the lanes, so each lane
    # holds one channel's whole state row and the chunk's rows, and the readout's sum and
    # the prologue of the channel-only values stay in the lane (docs/triton.md, session 15)
    swap = len(shape) == 2 and channel == shape[0]
    # and its other dim is held on two axes [H, S]: SPLIT (S) lanes share a channel, each
    # holding H of its state elements, so twice the warps hold a channel block where there
    # are too few channels to give each scheduler more than one (the selective SSM at B8
    # D2048: one warp per scheduler, latency-bound)
    split = shape[1] if swap else None
    tile_rank, _ = _dim_axes(shape, swap, split)
    tp = TilePrinter(ir.semiring, names, channel,
                     lambda d, r, ax, width: place(f"m_{d}", r, ax, width), swap, split)
    static, chunk = [], []
    for p in ir.params:
        static.append(f"s_{p.name} = {_static_load('p_' + p.name, p.shape, swap, split)}")
    loads = [(i.name, _load("p_" + i.name, i.shape, True, swap=swap, split=split))
             for i in ir.inputs]
    for let in ir.lets:
        var = ("v_" if let.expr.varying else "s_") + let.name
        code = f"{var} = {tp(let.expr)}"
        if split is not None and _shareable(let.expr, channel):
            # a channel-only value the SPLIT lanes of a channel would each compute: with
            # SHARE, each lane computes 1 / S of its rows and the lanes exchange them
            # (`_lane_rows`, `_rows_back`): softplus's exp and log are then not repeated
            lane = TilePrinter(ir.semiring, names | {
                r.name: f"_lane_rows({names[r.name]}, S_{split})" for r in refs(let.expr)
                if r.varying},
                channel, tp.mask, swap, split)
            code = (f"if SHARE and S_{split} > 1 and BT % S_{split} == 0:\n"
                    f"    {var} = _rows_back({lane(let.expr)}, S_{split})\n"
                    f"else:\n    {code}")
        names[let.name] = var
        (chunk if let.expr.varying else static).append(code)
    update = ir.updates[0]
    held = shape[::-1] if swap else shape
    full = "(BT, " + ", ".join("BC" if d == channel else f"H_{d}, S_{d}" if d == split
                               else f"P_{d}" for d in held) + ")"
    tr = update.transition
    coeff = "ONE" if tr.coeff is None else tp._op(tr.coeff, shape)
    inject = "ZERO" if update.inject is None else tp._op(update.inject, shape)
    def tile(var, node, code):
        # a per-token value of the state's shape is the tile already; anything else (a
        # constant, a static or lower-rank value) is broadcast by adding zeros
        if node is not None and node.varying and tuple(node.shape) == tuple(shape):
            return f"{var} = {code}"
        return f"{var} = tl.broadcast_to(({code}) + tl.zeros({full}, CDT), {full})"
    chunk.append(tile("b_a", tr.coeff, coeff))
    chunk.append(tile("b_b", update.inject, inject))
    post, stores = [], []
    for r in ir.readouts:
        names[r.name] = f"v_r_{r.name}"
        post.append(f"v_r_{r.name} = {tp(r.expr)}")
    for o in ir.outputs:
        post.append(f"v_o_{o.name} = {tp(o.expr)}")
        offs = _load("p_out_" + o.name, o.expr.shape, True, swap=swap, split=split).replace(
            "tl.load(", "(")
        ptr, _, mask = offs[1:-1].rpartition(", other=")[0].rpartition(", mask=")
        stores.append(f"tl.store({ptr}, v_o_{o.name}.to(p_out_{o.name}.dtype.element_ty), "
                      f"mask={mask})")
    h0 = _state_load(shape, swap, split)
    dims = list(shape)
    # nothing to fuse: no prologue, the inputs are the coefficient and the injected term, and
    # the outputs are the state itself (the unfused kernels move the same bytes)
    plain = (not ir.lets and all(x is None or (type(x).__name__ == "Ref" and x.kind == "input")
                                 for x in (tr.coeff, update.inject))
             and all(type(r.expr).__name__ == "Ref" and r.expr.kind == "state"
                     for r in ir.readouts)
             and all(type(o.expr).__name__ == "Ref" and o.expr.kind in ("readout", "state")
                     for o in ir.outputs))
    return {
        "channel": channel, "dims": dims, "pads": [d for d in dims if d != channel],
        "plain": plain,
        "rank": rank, "static": static, "loads": loads, "chunk": chunk, "post": post,
        "stores": stores,
        "inputs": [i.name for i in ir.inputs], "params": [p.name for p in ir.params],
        # inputs without the channel dim are shared by every channel thread, so each thread
        # would widen its own copy of every element: they are widened once on the host
        "wide": [i.name for i in ir.inputs if channel not in i.shape],
        "outputs": [(o.name, [d if isinstance(d, int) else f"dims[{d!r}]" for d in o.expr.shape])
                    for o in ir.outputs],
        "h0_load": h0, "lead": "[None, " + ", ".join([":"] * (tile_rank - 1)) + "]",
        "last": place("(o_r == tl.minimum(eos - t0, BT) - 1)", tile_rank, 0),
        "first_r": place("(o_r == 0)", tile_rank, 0),
        "last_r": place("(o_r == BT - 1)", tile_rank, 0),
        "state_mask": _state_mask(shape, swap, split),
        "state_offs": _state_offs(shape, swap, split),
        "swap": swap, "split": split,
    }


def _state_offs(shape: tuple, swap: bool = False, split=None) -> str:
    rank, axes = _dim_axes(shape, swap, split)
    return " + ".join(f"{place(f'o_{d}', rank - 1, ax - 1, w)} * ("
                      f"{' * '.join(f'n_{e}' for e in shape[j + 1:]) or '1'})"
                      for j, (d, (ax, w)) in enumerate(zip(shape, axes)))


def _state_mask(shape: tuple, swap: bool = False, split=None) -> str:
    rank, axes = _dim_axes(shape, swap, split)
    return " & ".join(place(f"m_{d}", rank - 1, ax - 1, w) for d, (ax, w) in zip(shape, axes))


def _state_load(shape: tuple, swap: bool = False, split=None) -> str:
    """The initial state's tile. With `swap` the launcher passes it with its two dims
    exchanged in memory (channel-contiguous), read a row per state index (`_state_rows`)
    into the held tile [H, S, BC] of the split dim."""
    if swap:
        d0, d1 = shape
        return (f"_state_rows(p_h0 + i_n * STATE, o_{d0}, m_{d0}, n_{d0}, n_{d1}, o_{d1}, "
                f"H_{d1}, S_{d1}, BC)")
    return (f"tl.load(p_h0 + i_n * STATE + {_state_offs(shape)}, "
            f"mask={_state_mask(shape)}, other=0.0)")
