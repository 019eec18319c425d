"""The torch printers: semiring spellings chosen from facts (checked numerically against the
sympy definitions), leading-axis alignment, matmul shapes, and errors for what they cannot
print."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from codegen_util import REPO

from madc import semiring as sr
from madc.codegen.torch_print import (
    CodegenError,
    SemiringSpelling,
    TorchPrinter,
    py_name,
    strip_parens,
)
from madc.frontend import load_spec
from madc.ir import SEMIRING_X as X
from madc.ir import SEMIRING_Y as Y
from madc.ir import Binary, Call, Index, Num, Ref, SMatmul, SOuter, SSum

_VALUES = {"nonneg": (0.0, 3.0), "boolean": None}


def _samples(domain, n=40):
    gen = torch.Generator().manual_seed(0)
    if domain == "boolean":
        return torch.randint(0, 2, (2, n), generator=gen).double()
    lo, hi = _VALUES.get(domain, (-3.0, 3.0))
    return lo + (hi - lo) * torch.rand(2, n, generator=gen, dtype=torch.float64)


def _run(code, **env):
    return eval(code, {"torch": torch, "F": F, "float": float}, env)  # noqa: S307


@pytest.mark.parametrize("name", sr.BUILTIN_NAMES)
def test_builtin_spellings_match_the_sympy_definitions(name):
    semiring = sr.builtin(name)
    spelling = SemiringSpelling(semiring)
    assert not spelling.generic
    x, y = _samples(semiring.domain)
    add, mul = _run(spelling.add("x", "y"), x=x, y=y), _run(spelling.mul("x", "y"), x=x, y=y)
    for i in range(0, x.numel(), 4):
        xi, yi = float(x[i]), float(y[i])
        assert math.isclose(add[i], sr.evaluate(semiring.add, xi, yi), rel_tol=1e-12)
        assert math.isclose(mul[i], sr.evaluate(semiring.mul, xi, yi), rel_tol=1e-12)
    pair = torch.stack([x, y], dim=-1)
    assert torch.allclose(_run(spelling.sum("p", -1), p=pair), add, rtol=1e-12, atol=0)
    assert _run(spelling.zero) == float(semiring.zero)
    assert _run(spelling.one) == float(semiring.one)


def test_spelling_is_chosen_by_facts_not_names():
    maxplus = sr.define("anything", "extended_reals", sympy_max(), X + Y, -sr.sympy.oo,
                        sr.sympy.Integer(0))
    assert SemiringSpelling(maxplus).add("a", "b") == "torch.maximum(a, b)"
    assert SemiringSpelling(maxplus).sum("a", -2) == "torch.amax(a, dim=-2)"
    assert SemiringSpelling(sr.builtin("log")).sum("a", -1) == "torch.logsumexp(a, dim=-1)"


def sympy_max():
    return sr.sympy.Max(X, Y)


def test_generic_semiring_prints_the_sympy_form():
    odd = sr.define("odd", "nonneg", X + Y + X * Y, 2 * X * Y, sr.sympy.Integer(0),
                    sr.sympy.Rational(1, 2))
    spelling = SemiringSpelling(odd)
    assert spelling.generic
    x, y = _samples("nonneg")
    assert torch.allclose(_run(spelling.add("x", "y"), x=x, y=y), x + y + x * y, rtol=1e-14)
    assert torch.allclose(_run(spelling.mul("x", "y"), x=x, y=y), 2 * x * y, rtol=1e-14)
    assert spelling.sum("v", -1) == "sr.fold(v, -1)"
    assert spelling.one == "0.5"


@pytest.fixture(scope="module")
def printer():
    return TorchPrinter(load_spec(str(REPO / "ops" / "selective_ssm.scan")))


def _ref(name, shape, varying=True, kind="input"):
    return Ref(name, kind, shape, varying)


def test_lower_rank_per_token_operand_gets_new_axes(printer):
    x, y = _ref("x", ("N",)), _ref("y", ("D", "N"))
    code = printer.doprint(Binary("add", x, y, ("D", "N"), True))
    assert code == "(x[..., None, :] + y)"
    xv, yv = torch.randn(2, 5, 3), torch.randn(2, 5, 4, 3)
    assert torch.equal(_run(code, x=xv, y=yv), xv[:, :, None, :] + yv)
    static = _ref("p", ("N",), varying=False, kind="param")
    assert printer.doprint(Binary("mul", static, y, ("D", "N"), True)) == "(p * y)"


@pytest.mark.parametrize("sx,sy,einsum", [(("M", "N"), ("N",), "btmn,btn->btm"),
                                           (("N",), ("N", "M"), "btn,btnm->btm"),
                                           (("M", "N"), ("N", "M"), "btmn,btnk->btmk"),
                                           (("N",), ("N",), "btn,btn->bt")])
def test_real_matmul_follows_numpy_rules_per_token(printer, sx, sy, einsum):
    sizes = {"M": 3, "N": 4}
    out_shape = ()
    code = printer.doprint(Binary("matmul", _ref("a", sx), _ref("b", sy), out_shape, True))
    a = torch.randn(2, 5, *(sizes[d] for d in sx), dtype=torch.float64)
    b = torch.randn(2, 5, *(sizes[d] for d in sy), dtype=torch.float64)
    assert torch.allclose(_run(code, a=a, b=b), torch.einsum(einsum, a, b), rtol=1e-12)


def test_log_semiring_matmul_and_outer():
    ir = load_spec(str(REPO / "ops" / "selective_ssm.scan"))
    log = TorchPrinter(dataclasses.replace(ir, semiring=sr.builtin("log")))
    a, b = _ref("a", ("M", "N")), _ref("b", ("N",))
    code = log.doprint(SMatmul(a, b, ("M",), True))
    av, bv = torch.randn(2, 3, 4, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64)
    want = torch.logsumexp(av + bv[:, None, :], dim=-1)
    assert torch.allclose(_run(code, a=av, b=bv), want, rtol=1e-12)
    outer = log.doprint(SOuter(b, b, ("N", "N"), True))
    assert torch.allclose(_run(outer, b=bv), bv[:, :, None] + bv[:, None, :])
    total = log.doprint(SSum(a, -2, ("N",), True))
    assert total == "torch.logsumexp(a, dim=-2)"


def test_indexing_reductions_and_constants(printer):
    x = _ref("x", ("N",))
    assert printer.doprint(Index(x, ("slice", "newaxis"), ("N", 1), True)) == "x[..., :, None]"
    call = Call("sum", (x,), (), True, axis=-1)
    assert printer.doprint(call) == "torch.sum(x, dim=-1)"
    assert printer.doprint(Num(float("-inf"))) == '-float("inf")'
    exp_const = Call("exp", (Num(2.0),), (), False)
    assert printer.doprint(exp_const) == "torch.exp(torch.as_tensor(2.0, dtype=dtype, " \
        "device=device))"
    dim = Call("arange", (Ref("N", "dim", (), False),), ("N",), False)
    assert printer.doprint(dim) == 'torch.arange(dims["N"], dtype=dtype, device=device)'


def test_unsupported_nodes_raise(printer):
    with pytest.raises(CodegenError, match="no rule for object"):
        printer.doprint(object())
    with pytest.raises(CodegenError, match="does not know the function 'erf'"):
        printer.doprint(Call("erf", (_ref("x", ()),), (), True))
    with pytest.raises(CodegenError, match="only allowed in a param init"):
        printer.doprint(Call("randn", (), (), False))
    with pytest.raises(CodegenError, match="matmul of per-token ranks 3 and 1"):
        printer.doprint(Binary("matmul", _ref("a", ("M", "N", "N")), _ref("b", ("N",)),
                               ("M", "N"), True))


def test_names_and_parentheses():
    assert py_name("x") == "x" and py_name("lambda") == "lambda_"
    assert py_name("torch") == "torch_" and py_name("dims") == "dims_"
    assert strip_parens("(a + b)") == "a + b"
    assert strip_parens("(a) + (b)") == "(a) + (b)"
    assert strip_parens("(a + b)[..., None]") == "(a + b)[..., None]"
