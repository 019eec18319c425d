"""Stage 2: `ast.Spec` -> `ir.ScanIR`: names, types, shapes, the real/semiring line rule,
update normalisation. Every diagnostic of the file is collected, then raised once.

Helpers live beside it: `sema_shapes` (broadcasting), `sema_expr` (expressions),
`sema_calls` (builtins), `sema_update` (transitions), `sema_semiring` (semirings).
"""

from __future__ import annotations

import builtins
import hashlib
import keyword
import re

from madc import ast, ir, semiring
from madc.errors import CompileError, Diagnostic
from madc.sema_expr import (
    CONSTRUCTORS,
    REAL_CALLABLE,
    Entry,
    ExprChecker,
    Mode,
    Poisoned,
    SemaError,
    fail,
)
from madc.sema_semiring import _builtin, builtin_semiring, defined_semiring
from madc.sema_shapes import broadcast, fmt_shape, size_of
from madc.sema_update import check_update

#: Largest default size of one dim.
MAX_DIM = 2**20
#: Largest number of elements of one value (state, input, param, let) at default dims.
MAX_ELEMENTS = 2**24

#: Names a spec may not declare: they are the language's own words or names the emitted
#: Python code uses (documented in docs/language.md).
LANGUAGE_WORDS = frozenset({
    "scan", "dims", "heads", "semiring", "over", "input", "param", "init", "let", "state",
    "readout", "output", "None", "inf", "oo", "identity", "outer"})
EMITTED_NAMES = frozenset({
    "torch", "triton", "tl", "nn", "F", "math", "np", "self", "inputs", "params", "dims",
    "initial_state", "cu_seqlens", "return_state", "options", "madc", "os", "sys"})
RESERVED = (LANGUAGE_WORDS | EMITTED_NAMES | REAL_CALLABLE | frozenset(CONSTRUCTORS)
            | frozenset(n for n in dir(builtins) if not n.startswith("_")))
_ASCII_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

_REAL_KINDS = frozenset({"input", "param", "let", "dim"})


def check_name(ident: ast.Ident) -> Diagnostic | None:
    """A diagnostic if `ident` cannot be a spec name (non-ASCII, keyword, dunder, reserved)."""
    name = ident.name
    if not _ASCII_IDENT.match(name):
        return Diagnostic(ident.span, "E0204", f"identifier {name!r} is not ASCII",
                          "names are ASCII letters, digits and underscores")
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        return Diagnostic(ident.span, "E0203", f"`{name}` is a Python keyword and cannot be a "
                          "name", "choose another name")
    if name.startswith("__"):
        return Diagnostic(ident.span, "E0203", f"`{name}` starts with a double underscore",
                          "names starting with __ are reserved")
    if name in RESERVED:
        return Diagnostic(ident.span, "E0203", f"`{name}` is a reserved name",
                          "see the reserved names in docs/language.md")
    return None


class _Sema:
    def __init__(self, spec: ast.Spec, source: str):
        self.spec = spec
        self.source = source
        self.path = spec.path
        self.diags: list[Diagnostic] = []
        self.scope: dict = {}
        self.dims: dict = {}
        self.heads: str | None = None
        self.name: str | None = None
        self.semiring: ir.Semiring | None = None
        self.semiring_seen = False
        self.inputs, self.params, self.lets, self.states = [], [], [], []
        self.updates: dict = {}
        self.readouts, self.outputs = [], []
        self.ck = ExprChecker(self.scope, self.dims, None)

    # ------------------------------------------------------------------ helpers
    def error(self, span, code, message, hint=None):
        self.diags.append(Diagnostic(span, code, message, hint))

    def declare(self, ident: ast.Ident, kind: str, shape, varying: bool) -> bool:
        """Add a name to scope; False (with a diagnostic) if it is bad or taken."""
        bad = check_name(ident)
        if bad is not None:
            self.diags.append(bad)
            return False
        if ident.name in self.scope:
            prev = self.scope[ident.name]
            where = f" (line {prev.span.line})" if prev.span is not None else ""
            self.error(ident.span, "E0202", f"`{ident.name}` is already declared{where}")
            return False
        self.scope[ident.name] = Entry(kind, shape, varying, ident.span)
        return True

    def poison(self, ident: ast.Ident, kind: str):
        if ident.name not in self.scope and check_name(ident) is None:
            self.scope[ident.name] = Entry(kind, None, True, ident.span)

    def shape(self, dims: tuple, what: str, allow_heads_first: bool = False):
        """A declared shape -> (shape tuple, per_head)."""
        out, per_head = [], False
        for i, d in enumerate(dims):
            if isinstance(d.value, str):
                entry = self.scope.get(d.value)
                if entry is not None and entry.shape is None:
                    raise Poisoned()  # a dim whose own declaration was refused
                if d.value not in self.dims:
                    fail(d.span, "E0206", f"unknown dim `{d.value}` in the shape of {what}",
                         "declare it with `dims NAME = SIZE`")
                if d.value == self.heads:
                    if allow_heads_first and i == 0:
                        per_head = True
                        continue
                    fail(d.span, "E0208", f"the heads dim `{d.value}` cannot appear in the "
                         f"shape of {what}", "heads are implicit: per-token shapes exclude "
                         "them; a param [H, ...] (H first) is per-head")
                out.append(d.value)
            else:
                if not float(d.value).is_integer() or not 1 <= d.value <= MAX_DIM:
                    fail(d.span, "E0210", f"a literal dim must be an integer in 1..{MAX_DIM}")
                out.append(int(d.value))
        shape = tuple(out)
        full = (self.heads,) + shape if per_head else shape
        if size_of(full, self.dims) > MAX_ELEMENTS:
            fail(dims[0].span if dims else None, "E0211", f"{what} would have "
                 f"{size_of(full, self.dims):,} elements per token, more than {MAX_ELEMENTS:,}",
                 "use smaller dims")
        return shape, per_head

    def guard(self, fn, *args):
        """Run one statement's check; a SemaError becomes a diagnostic."""
        try:
            return fn(*args), True
        except SemaError as err:
            self.diags.append(err.diag)
        except Poisoned:
            pass
        return None, False

    # ------------------------------------------------------------------ statements
    def run(self) -> ir.ScanIR:
        stmts = self.spec.statements
        if not stmts:
            raise CompileError([Diagnostic(None, "E0004", "the spec is empty",
                                           "a spec starts with `scan NAME`")], self.source,
                               self.path)
        if not isinstance(stmts[0], ast.ScanDecl):
            self.error(stmts[0].span, "E0205", "a spec must start with `scan NAME`")
        for st in stmts:
            handler = getattr(self, "_" + type(st).__name__)
            handler(st)
        self.finish()
        if self.diags:
            raise CompileError(self.diags, self.source, self.path)
        return self.build()

    def _ScanDecl(self, st: ast.ScanDecl):
        if self.name is not None:
            self.error(st.span, "E0205", "`scan` may appear only once")
            return
        bad = check_name(st.name)
        if bad is not None:
            self.diags.append(bad)
        self.name = st.name.name

    def _DimsDecl(self, st: ast.DimsDecl):
        for d in st.dims:
            v = d.value.value
            if not v.is_integer() or not 1 <= v <= MAX_DIM:
                self.error(d.value.span, "E0210", f"dim `{d.name.name}` must be an integer in "
                           f"1..{MAX_DIM}, got {d.value.text[:20]}")
                self.poison(d.name, "dim")
                continue
            if self.declare(d.name, "dim", (), False):
                self.dims[d.name.name] = int(v)

    def _HeadsDecl(self, st: ast.HeadsDecl):
        name = st.name.name
        if self.heads is not None:
            self.error(st.span, "E0208", "`heads` may appear only once")
        elif name not in self.dims:
            self.error(st.name.span, "E0208", f"`{name}` is not a declared dim",
                       f"declare it first: dims {name} = 4")
        elif self.inputs or self.params or self.lets or self.states or self.readouts:
            # Shapes checked before this line may have used the dim as an ordinary axis.
            self.error(st.span, "E0208", "`heads` must come before inputs, params, lets and "
                       "states", "move it right after the `dims` line")
        else:
            self.heads = name
            self.ck.heads = name

    def _semiring_once(self, st) -> bool:
        if self.semiring_seen:
            self.error(st.span, "E0209", "only one `semiring` line is allowed")
            return False
        if self.states:
            self.error(st.span, "E0209", "declare the semiring before the states")
        self.semiring_seen = True
        return True

    def _SemiringBuiltin(self, st: ast.SemiringBuiltin):
        if self._semiring_once(st):
            self.semiring, _ = self.guard(builtin_semiring, st)

    def _SemiringDef(self, st: ast.SemiringDef):
        if self._semiring_once(st):
            bad = check_name(st.name)
            if bad is not None and st.name.name not in semiring.BUILTIN_NAMES:
                self.diags.append(bad)
            self.semiring = defined_semiring(st, self.diags)

    def _InputDecl(self, st: ast.InputDecl):
        result, ok = self.guard(self.shape, st.shape, f"input `{st.name.name}`")
        if not ok:
            return self.poison(st.name, "input")
        if self.declare(st.name, "input", result[0], True):
            self.inputs.append(ir.Input(st.name.name, result[0], st.span))

    def _ParamDecl(self, st: ast.ParamDecl):
        result, ok = self.guard(self.shape, st.shape, f"param `{st.name.name}`", True)
        if not ok:
            return self.poison(st.name, "param")
        shape, per_head = result
        full = ((self.heads,) if per_head else ()) + shape
        mode = Mode("real", "param init", frozenset({"dim"}), allow_heads=True,
                    param_shape=full)
        init, ok = self.guard(self._param_init, st, mode, full)
        if not ok:
            return self.poison(st.name, "param")
        if self.declare(st.name, "param", shape, False):
            self.params.append(ir.Param(st.name.name, shape, init, per_head, st.span))

    def _param_init(self, st, mode, full):
        init = self.ck.real(st.init, mode)
        if broadcast(init.shape, full) != full:
            fail(st.init.span, "E0301", f"the init has shape {fmt_shape(init.shape)}, which "
                 f"does not broadcast to the param's shape {fmt_shape(full)}")
        return init

    def _LetDecl(self, st: ast.LetDecl):
        mode = Mode("real", "let", _REAL_KINDS)
        expr, ok = self.guard(self._let, st, mode)
        if not ok:
            return self.poison(st.name, "let")
        if self.declare(st.name, "let", expr.shape, expr.varying):
            self.lets.append(ir.Let(st.name.name, expr, st.span))

    def _let(self, st, mode):
        expr = self.ck.real(st.expr, mode)
        if size_of(expr.shape, self.dims) > MAX_ELEMENTS:
            fail(st.expr.span, "E0211", f"this value would have "
                 f"{size_of(expr.shape, self.dims):,} elements, more than {MAX_ELEMENTS:,}")
        return expr

    def _StateDecl(self, st: ast.StateDecl):
        result, ok = self.guard(self.shape, st.shape, f"state `{st.name.name}`")
        if not ok:
            return self.poison(st.name, "state")
        if not result[0]:
            self.error(st.span, "E0206", "a state needs at least one axis",
                       "write `state h : [1]` for a single number")
            return self.poison(st.name, "state")
        if self.declare(st.name, "state", result[0], True):
            self.states.append(ir.State(st.name.name, result[0], st.span))

    def _UpdateStmt(self, st: ast.UpdateStmt):
        name = st.name.name
        entry = self.scope.get(name)
        if entry is None or entry.kind != "state":
            what = "undeclared" if entry is None else f"a {entry.kind}"
            self.error(st.name.span, "E0207", f"`{name}` is {what}, not a state, so "
                       f"`{name} = ...` is not a state update",
                       f"declare `state {name} : [...]` first, or write `let {name} = ...`")
            return
        if entry.shape is None:
            return
        if name in self.updates:
            self.error(st.span, "E0207", f"state `{name}` is updated twice")
            return
        state = next(s for s in self.states if s.name == name)
        kinds = _REAL_KINDS - {"dim"} | {"state"}
        mode = Mode("semiring", "state update", kinds)
        real_mode = Mode("real", "transition argument", _REAL_KINDS)
        facts = self.semiring.facts if self.semiring is not None else frozenset()
        self.updates[name] = None
        upd, ok = self.guard(self._update, st, state, mode, real_mode, facts)
        if ok:
            self.updates[name] = upd

    def _update(self, st, state, mode, real_mode, facts):
        # The update may read its own state only; other states are readout material.
        for other in self.states:
            if other.name != state.name and _uses(st.expr, other.name):
                fail(st.expr.span, "E0404", f"the update of `{state.name}` reads another "
                     f"state `{other.name}`", "each state's update reads only itself")
        return check_update(self.ck, st, state, mode, real_mode, facts)

    def _ReadoutDecl(self, st: ast.ReadoutDecl):
        mode = Mode("semiring", "readout", _REAL_KINDS - {"dim"} | {"state"})
        expr, ok = self.guard(self.ck.semiring, st.expr, mode)
        if not ok:
            return self.poison(st.name, "readout")
        if self.declare(st.name, "readout", expr.shape, True):
            self.readouts.append(ir.Readout(st.name.name, expr, st.span))

    def _OutputDecl(self, st: ast.OutputDecl):
        mode = Mode("real", "output", _REAL_KINDS | {"readout"})
        expr, ok = self.guard(self.ck.real, st.expr, mode)
        if not ok:
            return self.poison(st.name, "output")
        if self.declare(st.name, "output", expr.shape, True):
            self.outputs.append(ir.Output(st.name.name, expr, st.span))

    # ------------------------------------------------------------------ the whole spec
    def finish(self):
        if self.name is None and not any(d.code == "E0205" for d in self.diags):
            self.error(None, "E0205", "a spec must start with `scan NAME`")
        if not self.semiring_seen:
            self.semiring = _builtin("real")
        for s in self.states:
            if s.name not in self.updates:
                self.error(s.span, "E0207", f"state `{s.name}` is never updated",
                           f"add `{s.name} = a * {s.name} + b`")
        if not self.states and not self.diags:
            self.error(None, "E0601", "the spec declares no state", "add `state h : [D]` "
                       "and its update")
        if not self.readouts and not self.diags:
            self.error(None, "E0601", "the spec declares no readout",
                       "add `readout y = ...` (a semiring expression of the states)")

    def build(self) -> ir.ScanIR:
        outputs = self.outputs or [
            ir.Output(r.name, ir.Ref(r.name, "readout", r.expr.shape, True), r.span)
            for r in self.readouts]
        return ir.ScanIR(
            name=self.name, path=self.path, source=self.source,
            source_hash=hashlib.sha256(self.source.encode("utf-8")).hexdigest(),
            dims=tuple(self.dims.items()), heads=self.heads, semiring=self.semiring,
            inputs=tuple(self.inputs), params=tuple(self.params), lets=tuple(self.lets),
            states=tuple(self.states),
            updates=tuple(self.updates[s.name] for s in self.states),
            readouts=tuple(self.readouts), outputs=tuple(outputs))


def _uses(e, name: str) -> bool:
    from madc.sema_update import _mentions

    return _mentions(e, name)


def analyse(spec: ast.Spec, source: str) -> ir.ScanIR:
    """Check a parsed spec and build its `ScanIR`; raises `CompileError` with every
    diagnostic of the file."""
    return _Sema(spec, source).run()
