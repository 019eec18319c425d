"""Torch printing for the structured Triton backend: the prologue, injections, readouts and
outputs of a `ScanIR` as torch source, plus the runtime helpers those lines call.

Every printed value is right-aligned (see `madc.ir`): per-token tensors carry [B, T, H] in
front, static ones [H] or nothing, and axes are negative, so the printer never needs to know
how many leading axes a tensor has. Semiring nodes print as calls of `_sr_add`, `_sr_mul`,
`_sr_sum`, whose bodies come from `semiring_helpers` (chosen by the semiring's derived facts).
An unsupported node raises `UnsupportedError`; no partial code is ever returned.
"""

from __future__ import annotations

import math

from madc import ir
from madc.codegen.torch_print import LeadInfo

# Elementwise real builtins: name -> torch spelling of a one-argument call.
_UNARY = {
    "exp": "torch.exp", "log": "torch.log", "log1p": "torch.log1p", "expm1": "torch.expm1",
    "softplus": "torch.nn.functional.softplus", "sigmoid": "torch.sigmoid",
    "tanh": "torch.tanh", "relu": "torch.relu", "silu": "torch.nn.functional.silu",
    "sqrt": "torch.sqrt", "abs": "torch.abs", "cos": "torch.cos", "sin": "torch.sin",
    "hardsign": "_hardsign",
}
_REDUCE = {"sum": "torch.sum", "mean": "torch.mean", "amax": "torch.amax",
           "amin": "torch.amin", "logsumexp": "torch.logsumexp"}
_BINARY = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**"}


class UnsupportedError(ValueError):
    """The IR holds something this backend cannot print."""


def semiring_facts_supported(semiring: ir.Semiring) -> str | None:
    """None when the semiring's add and mul are operations this backend lowers, else why."""
    facts = semiring.facts
    if not facts & {"add_is_plus", "add_is_max", "add_is_min", "add_is_logaddexp"}:
        return f"semiring {semiring.name}: add {semiring.add} is not +, max, min or logaddexp"
    if not facts & {"mul_is_times", "mul_is_plus", "mul_is_min", "mul_is_max"}:
        return f"semiring {semiring.name}: mul {semiring.mul} is not *, +, min or max"
    return None


def constant(value) -> str:
    """A float literal as Python source (`math.inf` for infinities)."""
    value = float(value)
    if math.isinf(value):
        return "math.inf" if value > 0 else "-math.inf"
    return repr(value)


def semiring_helpers(semiring: ir.Semiring) -> str:
    """Torch definitions of `_sr_add`, `_sr_mul`, `_sr_sum` and `_sr_matmul`."""
    facts = semiring.facts
    if "add_is_plus" in facts:
        add, red = "x + y", "torch.sum(x, dim=axis)"
    elif "add_is_max" in facts:
        add, red = "torch.maximum(x, y)", "torch.amax(x, dim=axis)"
    elif "add_is_min" in facts:
        add, red = "torch.minimum(x, y)", "torch.amin(x, dim=axis)"
    else:
        add, red = "torch.logaddexp(x, y)", "torch.logsumexp(x, dim=axis)"
    mul = {"mul_is_times": "x * y", "mul_is_plus": "x + y", "mul_is_min": "torch.minimum(x, y)",
           "mul_is_max": "torch.maximum(x, y)"}
    mul = next(spelling for fact, spelling in mul.items() if fact in facts)
    matmul = ("torch.matmul(x, y)" if {"add_is_plus", "mul_is_times"} <= facts
              else "_sr_sum(_sr_mul(x[..., :, :, None], y[..., None, :, :]), -2)")
    return f'''
def _sr_add(x, y):
    """x (+) y in the {semiring.name} semiring."""
    x, y = _tensors(x, y)
    return {add}


def _sr_mul(x, y):
    """x (x) y in the {semiring.name} semiring."""
    x, y = _tensors(x, y)
    return {mul}


def _sr_sum(x, axis):
    """(+)-reduction over `axis`."""
    return {red}


def _sr_matmul(x, y):
    """Semiring product of [.., m, n] and [.., n, k] matrices."""
    return {matmul}
'''


RUNTIME_HELPERS = '''
def _tensors(*xs):
    """Python numbers in `xs` become tensors like the first tensor among them."""
    like = next(x for x in xs if isinstance(x, torch.Tensor))
    return tuple(x if isinstance(x, torch.Tensor)
                 else torch.as_tensor(x, dtype=like.dtype, device=like.device) for x in xs)


def _maximum(x, y):
    return torch.maximum(*_tensors(x, y))


def _minimum(x, y):
    return torch.minimum(*_tensors(x, y))


def _stack(xs, axis):
    return torch.stack(torch.broadcast_tensors(*_tensors(*xs)), dim=axis)


def _hardmax(x, axis):
    """One-hot of the argmax over `axis`, with the gradient of softmax (straight-through)."""
    soft = torch.softmax(x, dim=axis)
    hard = torch.zeros_like(x).scatter_(axis, x.argmax(dim=axis, keepdim=True), 1.0)
    return hard + soft - soft.detach()


def _hardsign(x):
    """+-1 (+1 at 0), with the gradient of tanh (straight-through)."""
    soft = torch.tanh(x)
    return torch.where(x >= 0, 1.0, -1.0).to(x.dtype) + soft - soft.detach()


def _matvec(x, y):
    return (x * y[..., None, :]).sum(-1)


def _vecmat(x, y):
    return (x[..., :, None] * y).sum(-2)
'''


def bare(code: str) -> str:
    """`code` without one pair of parentheses enclosing all of it (for call arguments)."""
    if not (code.startswith("(") and code.endswith(")")):
        return code
    depth = 0
    for k, ch in enumerate(code):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth == 0 and k < len(code) - 1:
            return code
    return code[1:-1]


def wrap(line: str, width: int = 100) -> list:
    """Split a long generated line after the commas of its outermost open bracket, with
    continuation lines aligned under that bracket (as a formatter would)."""
    if len(line) <= width:
        return [line]
    depth, best, opener = 0, None, None
    stack = []
    for k, ch in enumerate(line):
        if ch in "([{":
            stack.append(k)
        elif ch in ")]}":
            stack.pop()
        elif ch == "," and stack and k < width - 1:
            if best is None or len(stack) <= depth:
                depth, best, opener = len(stack), k, stack[-1]
    if best is None:
        return [line]
    head, rest = line[:best + 1], line[best + 1:].lstrip()
    return [head] + wrap(" " * (opener + 1) + rest, width)


class TorchPrinter:
    """Prints `madc.ir` expressions as torch source. Names resolve through `env[...]`
    (inputs, params, lets, states, readouts) and `dims[...]`; `like` is a tensor giving
    dtype and device to constructors."""

    def __init__(self, lead: LeadInfo, semiring_ok: bool = True):
        self.lead = lead
        self.semiring_ok = semiring_ok

    def aligned(self, node, rank: int) -> str:
        """`node` printed with new axes after its leading axes so that its per-token rank is
        `rank` (numpy broadcasting of per-token shapes; static values without leading axes
        already right-align)."""
        code, own = self(node), len(node.shape)
        if own >= rank or not self.lead.has_lead(node):
            return code
        return f"{code}[..., {'None, ' * (rank - own)}{':, ' * own}]".replace(", ]", "]")

    def __call__(self, node) -> str:
        method = getattr(self, "_print_" + type(node).__name__, None)
        if method is None:
            raise UnsupportedError(f"cannot print {type(node).__name__} nodes")
        return method(node)

    def dim(self, d) -> str:
        """A dim (name or int) as source."""
        return f"dims[{d!r}]" if isinstance(d, str) else str(int(d))

    def _print_Ref(self, node: ir.Ref) -> str:
        if node.kind == "dim":
            return self.dim(node.name)
        return f"env[{node.name!r}]"

    def _print_Num(self, node: ir.Num) -> str:
        return constant(node.value)

    def _print_Unary(self, node: ir.Unary) -> str:
        return f"(-{self(node.x)})"

    def _print_Binary(self, node: ir.Binary) -> str:
        if node.op == "matmul":
            return self._matmul(node, "_matvec", "_vecmat", "torch.matmul")
        rank = len(node.shape)
        return f"({self.aligned(node.x, rank)} {_BINARY[node.op]} {self.aligned(node.y, rank)})"

    def _matmul(self, node, matvec: str, vecmat: str, matmat: str) -> str:
        rx, ry = len(node.x.shape), len(node.y.shape)
        x, y = self(node.x), self(node.y)
        if (rx, ry) == (2, 1):
            return f"{matvec}({x}, {y})"
        if (rx, ry) == (1, 2):
            return f"{vecmat}({x}, {y})"
        if (rx, ry) == (2, 2):
            return f"{matmat}({x}, {y})"
        if (rx, ry) == (1, 1):
            return f"({x} * {y}).sum(-1)" if matmat == "torch.matmul" else \
                f"_sr_sum(_sr_mul({x}, {y}), -1)"
        raise UnsupportedError(f"matmul of per-token ranks {rx} and {ry}")

    def _print_Call(self, node: ir.Call) -> str:
        fn, args = node.fn, node.args
        if fn in _UNARY:
            return f"{_UNARY[fn]}({bare(self(args[0]))})"
        if fn == "neg":
            return f"(-{self(args[0])})"
        if fn in _REDUCE:
            return f"{_REDUCE[fn]}({bare(self(args[0]))}, dim={node.axis})"
        rank = len(node.shape)
        if fn in ("maximum", "minimum"):
            return f"_{fn}({self.aligned(args[0], rank)}, {self.aligned(args[1], rank)})"
        if fn == "clamp":
            return "torch.clamp(" + ", ".join(self.aligned(a, rank) for a in args) + ")"
        if fn == "hardmax":
            return f"_hardmax({self(args[0])}, {node.axis})"
        if fn == "stack":
            items = ", ".join(self.aligned(a, rank - 1) for a in args)
            return f"_stack([{items}], {node.axis})"
        if fn == "roll":
            shift = node.extra[0] if node.extra else int(args[1].value)
            return f"torch.roll({self(args[0])}, {int(shift)}, dims={node.axis})"
        if fn in ("eye", "arange"):
            size = node.extra[0] if node.extra else args[0]
            size = self.dim(size) if isinstance(size, (str, int)) else self(size)
            return f"torch.{fn}({size}, dtype=like.dtype, device=like.device)"
        raise UnsupportedError(f"the builtin {fn}() cannot appear in a per-token expression")

    def _print_Index(self, node: ir.Index) -> str:
        spell = {"slice": ":", "newaxis": "None"}
        items = ", ".join(spell.get(item, str(item)) if isinstance(item, str) else str(item)
                          for item in node.items)
        return f"{self(node.x)}[..., {items}]"

    def _semiring(self, node) -> None:
        if not self.semiring_ok:
            raise UnsupportedError(f"semiring {type(node).__name__} inside real arithmetic")

    def _print_SAdd(self, node: ir.SAdd) -> str:
        self._semiring(node)
        rank = len(node.shape)
        return f"_sr_add({self.aligned(node.x, rank)}, {self.aligned(node.y, rank)})"

    def _print_SMul(self, node: ir.SMul) -> str:
        self._semiring(node)
        rank = len(node.shape)
        return f"_sr_mul({self.aligned(node.x, rank)}, {self.aligned(node.y, rank)})"

    def _print_SSum(self, node: ir.SSum) -> str:
        self._semiring(node)
        return f"_sr_sum({self(node.x)}, {node.axis})"

    def _print_SMatmul(self, node: ir.SMatmul) -> str:
        self._semiring(node)
        rx, ry = len(node.x.shape), len(node.y.shape)
        x, y = self(node.x), self(node.y)
        if (rx, ry) == (2, 1):
            return f"_sr_sum(_sr_mul({x}, {y}[..., None, :]), -1)"
        if (rx, ry) == (1, 2):
            return f"_sr_sum(_sr_mul({x}[..., :, None], {y}), -2)"
        if (rx, ry) == (2, 2):
            return f"_sr_matmul({x}, {y})"
        if (rx, ry) == (1, 1):
            return f"_sr_sum(_sr_mul({x}, {y}), -1)"
        raise UnsupportedError(f"semiring matmul of per-token ranks {rx} and {ry}")

    def _print_SOuter(self, node: ir.SOuter) -> str:
        self._semiring(node)
        return f"_sr_mul({self(node.x)}[..., :, None], {self(node.y)}[..., None, :])"
