"""The options through which the Triton backends' torch side uses the one torch printer
(`madc.codegen.torch_print`): a name callback, helper-call semiring spellings, the working
dtype/device source, real-only contexts, and the fold of a generic semiring."""

from __future__ import annotations

import functools

import pytest
import torch
from codegen_util import REPO

from madc import semiring as sr
from madc.codegen import triton_print, triton_structured_torch
from madc.codegen.torch_print import (
    CodegenError,
    HelperSpelling,
    SemiringSpelling,
    TorchPrinter,
)
from madc.frontend import load_spec
from madc.ir import SEMIRING_X as X
from madc.ir import SEMIRING_Y as Y
from madc.ir import Call, Num, Ref, SAdd, SMatmul, SOuter, SSum

HELPERS = HelperSpelling("_sadd", "_smul", "_ssum")


@pytest.fixture(scope="module")
def ir():
    return load_spec(str(REPO / "ops" / "selective_ssm.scan"))


def _ref(name, shape, varying=True, kind="input"):
    return Ref(name, kind, shape, varying)


def test_helper_spelling_calls_the_module_helpers_and_agrees_with_inline(ir):
    env = {"a": torch.randn(2, 3, 4, 5, dtype=torch.float64),
           "b": torch.randn(2, 3, 5, dtype=torch.float64)}
    names = {"names": lambda ref: f"env[{ref.name!r}]"}
    helper = TorchPrinter(ir, semiring=HELPERS, **names)
    inline = TorchPrinter(ir, **names)
    a, b = _ref("a", ("D", "N")), _ref("b", ("N",))
    node = SAdd(SSum(SMatmul(a, b, ("D",), True), -1, (), True), Num(1.0), (), True)
    code = helper.doprint(node)
    assert code == "_sadd(_ssum(_ssum(_smul(env['a'], env['b'][..., None, :]), -1), -1), 1.0)"
    spelling = SemiringSpelling(ir.semiring)
    scope = {"torch": torch, "env": env,
             "_sadd": lambda x, y: eval(spelling.add("x", "y"), {"x": x, "y": y}),  # noqa: S307
             "_smul": lambda x, y: eval(spelling.mul("x", "y"), {"x": x, "y": y}),  # noqa: S307
             "_ssum": lambda x, axis: torch.sum(x, dim=axis)}
    want = eval(inline.doprint(node), scope)  # noqa: S307
    assert torch.allclose(eval(code, scope), want, rtol=1e-12, atol=0)  # noqa: S307
    outer = helper.doprint(SOuter(b, b, ("N", "N"), True))
    assert outer == "_smul(env['b'][..., :, None], env['b'][..., None, :])"


def test_dtype_and_device_sources_are_options(ir):
    printer = TorchPrinter(ir, dtype="like.dtype", device="like.device")
    code = printer.doprint(Call("exp", (Num(2.0),), (), False))
    assert code == "torch.exp(torch.as_tensor(2.0, dtype=like.dtype, device=like.device))"
    like = torch.zeros((), dtype=torch.float64)
    assert eval(code, {"torch": torch, "like": like}).dtype == torch.float64  # noqa: S307
    eye = printer.doprint(Call("eye", (Ref("N", "dim", (), False),), ("N", "N"), False))
    assert eye == 'torch.eye(dims["N"], dtype=like.dtype, device=like.device)'


def test_real_only_printer_refuses_semiring_nodes(ir):
    real = TorchPrinter(ir, allow_semiring=False)
    a = _ref("a", ("N",))
    with pytest.raises(CodegenError, match="semiring SSum inside real arithmetic"):
        real.doprint(Call("exp", (SSum(a, -1, (), True),), (), True))
    assert real.doprint(Call("exp", (a,), ("N",), True)) == "torch.exp(a)"


def test_generic_fold_is_an_option_and_runs():
    odd = sr.define("odd", "nonneg", X + Y + X * Y, 2 * X * Y, sr.sympy.Integer(0),
                    sr.sympy.Rational(1, 2))
    spelling = SemiringSpelling(odd, fold="functools.reduce(_sadd, {x}.unbind({a}))")
    code = spelling.sum("v", -1)
    assert code == "functools.reduce(_sadd, v.unbind(-1))"
    v = torch.rand(3, 4, dtype=torch.float64)
    add = spelling.add("x", "y")
    scope = {"functools": functools, "torch": torch,
             "_sadd": lambda x, y: eval(add, {"torch": torch, "x": x, "y": y}),  # noqa: S307
             "v": v}
    want = v[:, 0]
    for k in range(1, 4):
        want = want + v[:, k] + want * v[:, k]
    assert torch.allclose(eval(code, scope), want, rtol=1e-12, atol=0)  # noqa: S307


def test_backend_errors_are_codegen_errors():
    assert issubclass(triton_print.PrintError, CodegenError)
    assert issubclass(triton_print.PrintError, ValueError)
    assert issubclass(triton_structured_torch.UnsupportedError, CodegenError)
    assert issubclass(triton_structured_torch.UnsupportedError, ValueError)


def test_structured_semiring_helpers_follow_the_facts():
    tropical = sr.builtin("tropical")
    text = triton_structured_torch.semiring_helpers(tropical)
    scope = {"torch": torch}
    exec(text, scope)  # noqa: S102
    scope["_tensors"] = lambda *xs: tuple(torch.as_tensor(x, dtype=torch.float64) for x in xs)
    x, y = torch.randn(3, 4, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64)
    assert torch.equal(scope["_sr_add"](x, 0.5), torch.clamp(x, min=0.5))
    assert torch.equal(scope["_sr_sum"](x, -1), x.amax(-1))
    want = (x[:, :, None] + y[None, :, :]).amax(-2)
    assert torch.equal(scope["_sr_matmul"](x, y), want)


def test_helpers_source_is_exact_forward_and_straight_through_backward():
    from madc.codegen.torch_print import HELPERS_SOURCE

    scope = {"torch": torch}
    exec(HELPERS_SOURCE, scope)  # noqa: S102
    x = torch.tensor([[0.3, -1.0, 2.0], [1.5, 0.2, -0.7]], dtype=torch.float64,
                     requires_grad=True)
    hard = scope["hardmax"](x, -1)
    assert torch.equal(hard.detach(), torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]],
                                                   dtype=torch.float64))
    g = torch.randn(2, 3, dtype=torch.float64)
    (dx,) = torch.autograd.grad(hard, x, g)
    (want,) = torch.autograd.grad(torch.softmax(x, dim=-1), x, g)
    assert torch.allclose(dx, want, rtol=1e-12, atol=0)
    sign = scope["hardsign"](x)
    assert torch.equal(sign.detach(), torch.where(x >= 0, 1.0, -1.0).double())
    (dx,) = torch.autograd.grad(sign, x, g)
    assert torch.allclose(dx, g * (1 - torch.tanh(x) ** 2), rtol=1e-12, atol=0)
