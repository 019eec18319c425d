"""Torch side of the structured Triton backend: the semiring helpers and runtime helpers that
the emitted module's prologue, injections, readouts and outputs call, and the line wrapper.

The expressions themselves are printed by `madc.codegen.torch_print.TorchPrinter` (see
`triton_structured._spec_code`): semiring nodes print as calls of `_sr_add`, `_sr_mul`,
`_sr_sum`, whose bodies `semiring_helpers` spells with `torch_print.SemiringSpelling` (chosen
by the semiring's derived facts).
"""

from __future__ import annotations

from madc import ir
from madc.codegen.torch_print import (
    HELPERS_SOURCE,
    CodegenError,
    SemiringSpelling,
    strip_parens,
)


class UnsupportedError(CodegenError, ValueError):
    """The IR holds something this backend cannot print."""


def semiring_facts_supported(semiring: ir.Semiring) -> str | None:
    """None when the semiring's add and mul are operations this backend lowers, else why."""
    facts = semiring.facts
    if not facts & {"add_is_plus", "add_is_max", "add_is_min", "add_is_logaddexp"}:
        return f"semiring {semiring.name}: add {semiring.add} is not +, max, min or logaddexp"
    if not facts & {"mul_is_times", "mul_is_plus", "mul_is_min", "mul_is_max"}:
        return f"semiring {semiring.name}: mul {semiring.mul} is not *, +, min or max"
    return None


def semiring_helpers(semiring: ir.Semiring) -> str:
    """Torch definitions of `_sr_add`, `_sr_mul`, `_sr_sum` and `_sr_matmul`."""
    spelling = SemiringSpelling(semiring)
    add, mul = (strip_parens(op("x", "y")) for op in (spelling.add, spelling.mul))
    red = spelling.sum("x", "axis")
    matmul = ("torch.matmul(x, y)" if spelling.is_real
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


''' + HELPERS_SOURCE + "\n"


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
