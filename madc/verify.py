"""`verify(ir)`: check a `ScanIR` against the contract in `madc/ir.py`.

Run at stage boundaries (always in tests). A violation is a compiler bug, not a user mistake,
so it raises `IRError` naming the offending declaration.
"""

from __future__ import annotations

from madc import ir
from madc.sema_shapes import broadcast, matmul_shape, outer_shape

STRUCTURES = frozenset({
    "identity", "scalar", "diagonal", "block_diagonal", "permutation", "monomial",
    "signed_permutation", "column_onehot_diagonal", "column_onehot", "circulant", "toeplitz",
    "dense", "monarch", "circulant_diagonal", "identity_minus_rank1"})
FACTOR_KINDS = frozenset({
    "diag", "perm", "onehot", "signed_perm", "block_diag", "circulant", "toeplitz", "dense",
    "monarch", "identity_minus_outer"})


class IRError(Exception):
    """The IR breaks its contract (a bug in the stage that produced it)."""


class _Verifier:
    def __init__(self, scan: ir.ScanIR):
        self.ir = scan
        self.dims = dict(scan.dims)
        self.table: dict = {}  # name -> (kind, shape, varying)

    def check(self, cond: bool, where: str, message: str):
        if not cond:
            raise IRError(f"{self.ir.name}: {where}: {message}")

    def shape_ok(self, shape, where: str, allow_heads: bool = False):
        self.check(isinstance(shape, tuple), where, f"shape {shape!r} is not a tuple")
        for d in shape:
            if isinstance(d, str):
                self.check(d in self.dims, where, f"unknown dim {d!r}")
                self.check(allow_heads or d != self.ir.heads, where,
                           f"heads dim {d!r} inside a shape")
            else:
                self.check(isinstance(d, int) and d >= 1, where, f"bad literal dim {d!r}")

    def declare(self, name: str, kind: str, shape, varying: bool, where: str):
        self.check(name not in self.table, where, f"{name!r} declared twice")
        self.table[name] = (kind, tuple(shape), varying)

    # ------------------------------------------------------------------ expressions
    def expr(self, e, arith: str, where: str, allow_heads: bool = False) -> None:
        """Check node kinds, refs and shapes recursively."""
        self.shape_ok(e.shape, where, allow_heads)
        if isinstance(e, ir.Ref):
            if e.kind == "dim":
                self.check(e.name in self.dims and e.shape == () and not e.varying, where,
                           f"bad dim ref {e.name!r}")
                self.check(arith == "real", where, "dim ref in a semiring expression")
                return
            self.check(e.name in self.table, where, f"unknown ref {e.name!r}")
            kind, shape, varying = self.table[e.name]
            self.check(kind == e.kind, where, f"ref {e.name!r} is a {kind}, not {e.kind}")
            self.check(shape == tuple(e.shape), where, f"ref {e.name!r} shape {e.shape} != "
                       f"declared {shape}")
            self.check(varying == e.varying, where, f"ref {e.name!r} varying flag is wrong")
            return
        if isinstance(e, ir.Num):
            self.check(arith == "real", where, "number inside a semiring expression")
            self.check(e.shape == () and not e.varying, where, "a Num has shape ()")
            return
        if isinstance(e, ir.Index):
            self.expr(e.x, arith, where, allow_heads)
            if arith == "semiring":
                self.check(isinstance(e.x, ir.Ref), where, "semiring Index of a non-ref")
            self._index(e, where)
            return
        real = isinstance(e, ir.REAL_NODES)
        self.check(real == (arith == "real"), where,
                   f"{type(e).__name__} inside a {arith} expression")
        kids = self._children(e)
        for k in kids:
            self.expr(k, arith, where, allow_heads)
        self.check(e.varying == any(k.varying for k in kids), where,
                   f"{type(e).__name__} varying flag is wrong")
        self._shape_rule(e, kids, where)

    def _children(self, e) -> tuple:
        if isinstance(e, ir.Unary):
            return (e.x,)
        if isinstance(e, ir.Call):
            return tuple(e.args)
        if isinstance(e, ir.SSum):
            return (e.x,)
        return (e.x, e.y)

    def _index(self, e: ir.Index, where: str):
        self.check(sum(1 for i in e.items if i != "newaxis") == len(e.x.shape), where,
                   "Index items do not cover every axis")
        out, pos = [], 0
        for it in e.items:
            if it == "newaxis":
                out.append(1)
            elif it == "slice":
                out.append(e.x.shape[pos])
                pos += 1
            else:
                self.check(isinstance(it, int), where, f"bad index item {it!r}")
                pos += 1
        self.check(tuple(out) == e.shape, where, f"Index shape {e.shape} != {tuple(out)}")
        self.check(e.varying == e.x.varying, where, "Index varying flag is wrong")

    def _shape_rule(self, e, kids, where: str):
        if isinstance(e, (ir.Binary, ir.SMatmul)) and (
                isinstance(e, ir.SMatmul) or e.op == "matmul"):
            expect = matmul_shape(kids[0].shape, kids[1].shape)
        elif isinstance(e, (ir.Binary, ir.SAdd, ir.SMul)):
            expect = broadcast(kids[0].shape, kids[1].shape)
        elif isinstance(e, ir.SOuter):
            expect = outer_shape(kids[0].shape, kids[1].shape)
        elif isinstance(e, ir.SSum):
            self.check(isinstance(e.axis, int) and -len(e.x.shape) <= e.axis < 0, where,
                       f"SSum axis {e.axis} must be negative and in range")
            expect = tuple(d for i, d in enumerate(e.x.shape) if i - len(e.x.shape) != e.axis)
        elif isinstance(e, ir.Unary):
            expect = e.x.shape
        else:
            self.check(e.fn in ir.REAL_FUNCTIONS, where, f"unknown function {e.fn!r}")
            self.check(e.axis is None or e.axis < 0, where, f"{e.fn} axis must be negative")
            return
        self.check(expect is not None and tuple(expect) == tuple(e.shape), where,
                   f"{type(e).__name__} shape {e.shape} != {expect}")

    # ------------------------------------------------------------------ declarations
    def run(self):
        s = self.ir
        for name, size in s.dims:
            self.check(isinstance(size, int) and size >= 1, "dims", f"bad size for {name!r}")
            self.declare(name, "dim", (), False, "dims")
        self.check(s.heads is None or s.heads in self.dims, "heads", "heads is not a dim")
        self.check(isinstance(s.semiring, ir.Semiring), "semiring", "missing semiring")
        for i in s.inputs:
            self.shape_ok(i.shape, f"input {i.name}")
            self.declare(i.name, "input", i.shape, True, f"input {i.name}")
        for p in s.params:
            self.shape_ok(p.shape, f"param {p.name}")
            self.expr(p.init, "real", f"param {p.name}", allow_heads=True)
            self.check(not p.init.varying, f"param {p.name}", "init is per-token")
            full = ((s.heads,) if p.per_head else ()) + tuple(p.shape)
            self.check(broadcast(p.init.shape, full) == full, f"param {p.name}",
                       f"init shape {p.init.shape} does not broadcast to {full}")
            self.declare(p.name, "param", p.shape, False, f"param {p.name}")
        for let in s.lets:
            self.expr(let.expr, "real", f"let {let.name}")
            self.declare(let.name, "let", let.expr.shape, let.expr.varying, f"let {let.name}")
        for st in s.states:
            self.shape_ok(st.shape, f"state {st.name}")
            self.check(len(st.shape) >= 1, f"state {st.name}", "a state has an axis")
            self.declare(st.name, "state", st.shape, True, f"state {st.name}")
        self.check(tuple(u.state for u in s.updates) == tuple(x.name for x in s.states),
                   "updates", "one update per state, in state order")
        for u, st in zip(s.updates, s.states):
            self._update(u, st)
        for r in s.readouts:
            self.expr(r.expr, "semiring", f"readout {r.name}")
            self.declare(r.name, "readout", r.expr.shape, True, f"readout {r.name}")
        self.check(len(s.outputs) >= 1, "outputs", "no outputs")
        for o in s.outputs:
            self.expr(o.expr, "real", f"output {o.name}")
            self.check(not _mentions_kind(o.expr, "state"), f"output {o.name}",
                       "an output reads a state")

    def _update(self, u: ir.Update, st: ir.State):
        where = f"update {u.state}"
        t = u.transition
        self.check(t.structure in STRUCTURES, where, f"unknown structure {t.structure!r}")
        self.check(t.side in ("elementwise", "left", "right"), where, f"bad side {t.side!r}")
        if t.side == "elementwise":
            self.check(not t.factors and t.size is None, where, "elementwise with factors")
            if t.coeff is None:
                self.check(t.structure == "identity", where, "no coeff but not identity")
            else:
                self.expr(t.coeff, "semiring", where)
                self.check(broadcast(t.coeff.shape, st.shape) == tuple(st.shape), where,
                           "coeff does not broadcast to the state")
                self.check(not _mentions_kind(t.coeff, "state"), where, "coeff reads a state")
                expect = "scalar" if t.coeff.shape == () else "diagonal"
                self.check(t.structure == expect, where, f"structure should be {expect}")
        else:
            self.check(len(t.factors) >= 1 and t.coeff is None, where, "matrix side needs "
                       "factors and no coeff")
            for f in t.factors:
                self.check(f.kind in FACTOR_KINDS, where, f"unknown factor {f.kind!r}")
                for a in f.args:
                    self.expr(a, "real", where)
            # The acted-on axes: one (size n) or, for block_diag/monarch, two (size (nb, k)).
            if isinstance(t.size, tuple):
                acted = st.shape[:2] if t.side == "left" else st.shape[-2:]
            else:
                acted = (st.shape[0] if t.side == "left" else st.shape[-1],)
                acted = acted if t.size is not None else ()
            want = t.size if isinstance(t.size, tuple) else (t.size,)
            self.check(tuple(acted) == tuple(want), where,
                       f"size {t.size!r} does not match the state's {t.side} axes {acted}")
        if u.inject is not None:
            self.expr(u.inject, "semiring", where)
            self.check(not _mentions_kind(u.inject, "state"), where, "inject reads a state")
            self.check(broadcast(u.inject.shape, st.shape) == tuple(st.shape), where,
                       "inject does not broadcast to the state")


def _mentions_kind(e, kind: str) -> bool:
    if isinstance(e, ir.Ref):
        return e.kind == kind
    if isinstance(e, ir.Num):
        return False
    if isinstance(e, ir.Call):
        return any(_mentions_kind(a, kind) for a in e.args)
    if isinstance(e, (ir.Unary, ir.Index, ir.SSum)):
        return _mentions_kind(e.x, kind)
    return _mentions_kind(e.x, kind) or _mentions_kind(e.y, kind)


def verify(scan: ir.ScanIR) -> None:
    """Raise `IRError` if `scan` breaks the ScanIR contract; return None otherwise."""
    _Verifier(scan).run()
