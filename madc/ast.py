"""The `.scan` AST: frozen, slotted dataclasses, each with a `span` (see `ir.Span`).

Built by `madc.parse` from the lark tree; read by `madc.sema`. Nodes say what was written,
nothing more: names are unresolved and arithmetic is not yet real or semiring.
"""

from __future__ import annotations

from dataclasses import dataclass

from madc.ir import Span

# --------------------------------------------------------------------------- expressions


@dataclass(frozen=True, slots=True)
class Name:
    """An identifier in an expression (`x`, `None`, `inf`, `identity` included)."""

    name: str
    span: Span


@dataclass(frozen=True, slots=True)
class Number:
    """A numeric literal; `text` is as written (so `2` and `2.0` can be told apart)."""

    value: float
    text: str
    span: Span


@dataclass(frozen=True, slots=True)
class Neg:
    """Unary minus."""

    x: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class BinOp:
    """`op` is one of add sub mul div pow matmul oplus otimes."""

    op: str
    x: Expr
    y: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Keyword:
    """`name=value` inside a call's argument list."""

    name: str
    value: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Call:
    """`fn(args..., kw=value...)`: positional `args` and `keywords` in source order."""

    fn: str
    args: tuple
    keywords: tuple  # tuple[Keyword, ...]
    span: Span
    fn_span: Span


@dataclass(frozen=True, slots=True)
class SliceAll:
    """`:` in a subscript."""

    span: Span


@dataclass(frozen=True, slots=True)
class Subscript:
    """`x[i, j, ...]`; items are `SliceAll` or expressions (`None`, integers)."""

    x: Expr
    items: tuple
    span: Span


Expr = Name | Number | Neg | BinOp | Call | Subscript


# --------------------------------------------------------------------------- statements


@dataclass(frozen=True, slots=True)
class Ident:
    """A declared name with its own span (for precise diagnostics)."""

    name: str
    span: Span


@dataclass(frozen=True, slots=True)
class ShapeDim:
    """One entry of a shape: a dim name (`value` str) or an integer literal (`value` int)."""

    value: str | int | float
    span: Span


@dataclass(frozen=True, slots=True)
class ScanDecl:
    name: Ident
    span: Span


@dataclass(frozen=True, slots=True)
class DimDef:
    name: Ident
    value: Number
    span: Span


@dataclass(frozen=True, slots=True)
class DimsDecl:
    dims: tuple  # tuple[DimDef, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class HeadsDecl:
    name: Ident
    span: Span


@dataclass(frozen=True, slots=True)
class SemiringBuiltin:
    """`semiring NAME [over DOMAIN]`."""

    name: Ident
    domain: Ident | None
    span: Span


@dataclass(frozen=True, slots=True)
class SemiringOp:
    """`add(x, y) = expr` inside a semiring block."""

    name: Ident
    params: tuple  # tuple[Ident, Ident]
    expr: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class SemiringConst:
    """`zero = expr` inside a semiring block."""

    name: Ident
    expr: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class SemiringDef:
    """`semiring NAME [over DOMAIN] { ... }`; items are `SemiringOp`/`SemiringConst`."""

    name: Ident
    domain: Ident | None
    items: tuple
    span: Span


@dataclass(frozen=True, slots=True)
class InputDecl:
    name: Ident
    shape: tuple  # tuple[ShapeDim, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class ParamDecl:
    name: Ident
    shape: tuple
    init: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class LetDecl:
    name: Ident
    expr: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class StateDecl:
    name: Ident
    shape: tuple
    span: Span


@dataclass(frozen=True, slots=True)
class UpdateStmt:
    """`h = expr`: the update of state `h`."""

    name: Ident
    expr: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class ReadoutDecl:
    name: Ident
    expr: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class OutputDecl:
    name: Ident
    expr: Expr
    span: Span


Statement = (ScanDecl | DimsDecl | HeadsDecl | SemiringBuiltin | SemiringDef | InputDecl
             | ParamDecl | LetDecl | StateDecl | UpdateStmt | ReadoutDecl | OutputDecl)


@dataclass(frozen=True, slots=True)
class Spec:
    """A whole file: its statements in source order."""

    path: str
    statements: tuple
