"""ScanIR: the verified, normalised form of a spec that every backend reads.

The front end (`parse` -> `ast` -> `sema`) produces a `ScanIR`; the algebra checker attaches
its verdicts; the backends (`codegen/*`) read nothing else. Every value is a frozen, slotted
dataclass, so a stage can never mutate what an earlier stage produced.

Conventions every backend relies on:

* **Per-token shapes.** Every expression has a `shape`: a tuple of dims, each a dim *name*
  (`"D"`) or a literal `int`. Shapes never include the batch, time or heads axes; at run time a
  per-token value is a tensor `[B, T, (H,) *shape]` and a static value (params, and lets that
  depend only on params) is `[(H,) *shape]`. Axes stored in the IR (`axis=`) are therefore
  counted from the *right*: `axis=-1` is the last per-token axis. Printers never need to know
  how many leading axes a tensor carries.
* **Heads.** `ScanIR.heads` names an independent dim (or is None). It never appears in shapes.
  Inputs are `[B, T, H, *shape]`; a param declared with the heads dim first is per-head
  (`Param.per_head`), stored `[H, *shape]`, and right-aligned broadcasting makes it line up.
* **Real vs semiring arithmetic.** Real arithmetic (`let`, `output`, `param` init) uses
  `Binary`/`Unary`/`Call`. Semiring arithmetic (the state update's injected term and the
  `readout` lines) uses only `SAdd`, `SMul`, `SSum`, `SMatmul`, `SOuter` on operands that are
  `Ref`s, `Index`es of refs, or other semiring nodes. A printer that meets a real node inside a
  semiring expression (or the other way round) must raise: `verify()` rejects such IR.
* **Transitions.** Each state's update is normalised to `h = T(h) (+) inject`, see
  `Transition`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import sympy

Dim = str | int
Shape = tuple  # tuple[Dim, ...]


# --------------------------------------------------------------------------- expressions


@dataclass(frozen=True, slots=True)
class Ref:
    """A name. `kind` says what it names; `varying` is True for per-token values."""

    name: str
    kind: Literal["input", "param", "let", "state", "readout", "dim"]
    shape: Shape
    varying: bool


@dataclass(frozen=True, slots=True)
class Num:
    """A literal real number (`inf`/`-inf` allowed). Always shape ()."""

    value: float
    shape: Shape = ()
    varying: bool = False


@dataclass(frozen=True, slots=True)
class Unary:
    """Real negation: `op` is "neg"."""

    op: Literal["neg"]
    x: Expr
    shape: Shape
    varying: bool


@dataclass(frozen=True, slots=True)
class Binary:
    """Real binary arithmetic with numpy broadcasting. `matmul` follows numpy `@` on the
    per-token shapes ([m,n]@[n] -> [m], [n]@[n,k] -> [k], [m,n]@[n,k] -> [m,k])."""

    op: Literal["add", "sub", "mul", "div", "pow", "matmul"]
    x: Expr
    y: Expr
    shape: Shape
    varying: bool


@dataclass(frozen=True, slots=True)
class Call:
    """A real builtin. `fn` is one of `REAL_FUNCTIONS`; `axis` (negative, see module doc) for
    reductions/hardmax/roll/stack; `extra` holds static integer arguments (roll's shift)."""

    fn: str
    args: tuple
    shape: Shape
    varying: bool
    axis: int | None = None
    extra: tuple = ()


@dataclass(frozen=True, slots=True)
class Index:
    """Basic indexing: each item is "slice" (`:`), "newaxis" (`None`) or an int. Leading axes
    (batch/time/heads) are untouched: printers emit `x[..., <items>]`."""

    x: Expr
    items: tuple
    shape: Shape
    varying: bool


# Semiring nodes: (+) is the semiring's add, (*) its mul.


@dataclass(frozen=True, slots=True)
class SAdd:
    """x (+) y, elementwise with broadcasting."""

    x: Expr
    y: Expr
    shape: Shape
    varying: bool


@dataclass(frozen=True, slots=True)
class SMul:
    """x (*) y, elementwise with broadcasting."""

    x: Expr
    y: Expr
    shape: Shape
    varying: bool


@dataclass(frozen=True, slots=True)
class SSum:
    """(+)-reduction of x over `axis` (negative)."""

    x: Expr
    axis: int
    shape: Shape
    varying: bool


@dataclass(frozen=True, slots=True)
class SMatmul:
    """Semiring matrix product with numpy `@` shape rules: (+)-sum over the contracted
    axis of (*)-products."""

    x: Expr
    y: Expr
    shape: Shape
    varying: bool


@dataclass(frozen=True, slots=True)
class SOuter:
    """outer(u, v)[..., i, j] = u[..., i] (*) v[..., j] (leading axes broadcast)."""

    x: Expr
    y: Expr
    shape: Shape
    varying: bool


Expr = Ref | Num | Unary | Binary | Call | Index | SAdd | SMul | SSum | SMatmul | SOuter

REAL_NODES = (Unary, Binary, Call)
SEMIRING_NODES = (SAdd, SMul, SSum, SMatmul, SOuter)

#: Real builtins. Elementwise unless noted. Reductions and hardmax take `axis`.
REAL_FUNCTIONS = frozenset(
    {
        "exp", "log", "log1p", "expm1", "softplus", "sigmoid", "tanh", "relu", "silu",
        "sqrt", "abs", "cos", "sin", "neg",
        "maximum", "minimum",          # elementwise, 2 args (spelled max(x, y)/min(x, y))
        "clamp",                       # clamp(x, lo, hi): 3 args
        "sum", "mean", "amax", "amin", "logsumexp",   # reductions over axis
        "hardmax",    # one-hot of argmax over axis; straight-through gradient of softmax
        "hardsign",   # +-1; straight-through gradient of tanh
        "stack",      # stack(x1, ..., xn, axis=k): new axis at k
        "roll",       # roll(x, shift, axis=k): extra=(shift,)
        "eye",        # eye(n): static [n, n]; extra=(n,)  (n a dim name or int in args)
        "arange",     # arange(n): static [n]
        "randn",      # param init only: standard normal of the param's full shape
        "uniform",    # param init only: uniform(lo, hi) of the param's full shape
    }
)


# --------------------------------------------------------------------------- declarations


@dataclass(frozen=True, slots=True)
class Span:
    """A source range, 1-based lines and columns, end exclusive."""

    path: str
    line: int
    column: int
    end_line: int
    end_column: int


@dataclass(frozen=True, slots=True)
class Semiring:
    """A semiring, its axioms' ingredients as sympy, and what the compiler derived from them.

    `add`/`mul` are sympy expressions in `SEMIRING_X`, `SEMIRING_Y`. `domain` is one of
    "reals", "extended_reals", "nonneg", "unit_interval", "boolean", "positive".
    `facts` holds derived facts the backends choose lowerings by (never the name):
      "add_is_plus", "mul_is_times" (the real field operations),
      "add_is_max", "add_is_min" (idempotent, selective: argmax/argmin backward),
      "add_is_logaddexp" (exp-linearisable: log(exp x + exp y)),
      "mul_is_plus", "idempotent_add", "has_additive_inverse".
    """

    name: str
    domain: str
    add: sympy.Expr
    mul: sympy.Expr
    zero: sympy.Expr
    one: sympy.Expr
    facts: frozenset = frozenset()
    span: Span | None = None


SEMIRING_X = sympy.Symbol("x", real=True)
SEMIRING_Y = sympy.Symbol("y", real=True)


@dataclass(frozen=True, slots=True)
class Input:
    name: str
    shape: Shape
    span: Span | None = None


@dataclass(frozen=True, slots=True)
class Param:
    """A learned parameter. `shape` excludes the heads dim; `per_head` says whether it is
    stored with a leading heads axis. `init` is a static real Expr broadcastable to
    `(H,)*per_head + shape` (it may use `randn`/`uniform`)."""

    name: str
    shape: Shape
    init: Expr
    per_head: bool = False
    span: Span | None = None


@dataclass(frozen=True, slots=True)
class Let:
    """A real-arithmetic definition: the kernel prologue, in topological (source) order."""

    name: str
    expr: Expr
    span: Span | None = None


@dataclass(frozen=True, slots=True)
class State:
    name: str
    shape: Shape
    span: Span | None = None


@dataclass(frozen=True, slots=True)
class Factor:
    """One written matrix constructor in a transition product.

    kind      args (real Exprs, per-token or static)            matrix it denotes, size n
    diag      (d: [n])                                          diag(d)
    perm      (P: [n, n], a permutation matrix)                 P
    onehot    (P: [n, n], each column one-hot)                  P
    signed_perm (P: [n, n] permutation, s: [n] of +-1)          P diag(s)
    block_diag (M: [nb, k, k])                                  blockdiag(M[0], ...), n = nb*k
    circulant (c: [n])                                          C[i, j] = c[(i - j) mod n]
    toeplitz  (c: [2n - 1])                                     T[i, j] = c[i - j + n - 1]
    dense     (M: [n, n])                                       M
    monarch   (L: [b, b, b], R: [b, b, b])                      P^T blockdiag(L) P blockdiag(R)
    identity_minus_outer (u: [n], w: [n])                       I - u w^T   (real semiring)
    """

    kind: str
    args: tuple


@dataclass(frozen=True, slots=True)
class Transition:
    """The transition of one state update `h = T(h) (+) inject`.

    side="elementwise": T(h) = coeff (*) h with broadcasting (coeff None means identity).
      structure is "identity", "scalar" (coeff shape ()) or "diagonal".
    side="left":  T(h) = A @ h acting on h's first per-token axis, A = factors[0] @ ... .
    side="right": T(h) = h @ A acting on h's last per-token axis.
    `structure` is the class of the written product, as the algebra checker names it:
      identity, scalar, diagonal, block_diagonal, permutation, monomial, signed_permutation,
      column_onehot_diagonal, column_onehot, circulant, toeplitz, dense, monarch,
      circulant_diagonal, identity_minus_rank1.
    `size` is n, the side length of A (a dim name or int); None for elementwise.
    block_diag and monarch act on two state axes holding the n = nb*k (b*b) entries row-major:
    the state's first two per-token axes [nb, k] (side="left") or last two (side="right");
    their `size` is that pair of dims, e.g. ("P", 2) for M: [P, 2, 2] on a state [P, 2].
    """

    structure: str
    side: Literal["elementwise", "left", "right"]
    coeff: Expr | None = None
    factors: tuple = ()
    size: Dim | None = None


@dataclass(frozen=True, slots=True)
class Update:
    """h_t = T_t(h_{t-1}) (+) inject_t. `inject` is a semiring Expr of per-token values
    (no state), shape broadcastable to the state; None means the semiring zero."""

    state: str
    transition: Transition
    inject: Expr | None
    span: Span | None = None


@dataclass(frozen=True, slots=True)
class Readout:
    """A semiring expression of states and per-token values, evaluated after the update."""

    name: str
    expr: Expr
    span: Span | None = None


@dataclass(frozen=True, slots=True)
class Output:
    """A real expression of readouts, lets and inputs. If a spec writes no `output` line,
    sema makes one `Output(r, Ref(r, "readout"))` per readout."""

    name: str
    expr: Expr
    span: Span | None = None


@dataclass(frozen=True, slots=True)
class ScanIR:
    """The whole spec, verified and normalised. `dims` maps name -> default size in
    declaration order; `source` is the spec text and `source_hash` its sha256."""

    name: str
    path: str
    source: str
    source_hash: str
    dims: tuple  # tuple[tuple[str, int], ...]
    heads: str | None
    semiring: Semiring
    inputs: tuple  # tuple[Input, ...]
    params: tuple  # tuple[Param, ...]
    lets: tuple  # tuple[Let, ...]
    states: tuple  # tuple[State, ...]
    updates: tuple  # tuple[Update, ...], same order as states
    readouts: tuple  # tuple[Readout, ...]
    outputs: tuple  # tuple[Output, ...]
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    def dim_sizes(self, **overrides: int) -> dict:
        """Dim name -> size, defaults overridden by keyword."""
        sizes = dict(self.dims)
        for name, value in overrides.items():
            if name not in sizes:
                raise KeyError(f"unknown dim {name!r}; the spec declares {sorted(sizes)}")
            sizes[name] = int(value)
        return sizes
