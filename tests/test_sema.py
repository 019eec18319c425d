"""sema: the zoo's IR (classes, sides, heads), shapes, semirings, and refusals by code."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import sympy

from madc import ir
from madc.errors import CompileError
from madc.frontend import load_spec
from madc.verify import IRError, verify

ROOT = Path(__file__).resolve().parent.parent
OPS = sorted((ROOT / "ops").glob("*.scan"))

# spec -> (heads, [(state, structure, side, size)], output shapes)
ZOO = {
    "selective_ssm": (None, [("h", "diagonal", "elementwise", None)], [("D",)]),
    "hgrn": (None, [("h", "diagonal", "elementwise", None)], [("D",)]),
    "oscillatory_ssm": (None, [("h", "block_diagonal", "left", ("P", 2))], [("P",)]),
    "gla": ("H", [("S", "diagonal", "elementwise", None)], [("V",)]),
    "gated_gla": ("H", [("S", "diagonal", "elementwise", None)], [("V",)]),
    "retnet": ("H", [("S", "scalar", "elementwise", None)], [("V",)]),
    "mamba2_ssd": ("H", [("S", "scalar", "elementwise", None)], [("P",)]),
    "mlstm": ("H", [("C", "scalar", "elementwise", None), ("n", "scalar", "elementwise", None)],
              [("V",)]),
    "log_ssm": (None, [("h", "diagonal", "elementwise", None)], [("D",)]),
    "tropical_ssm": (None, [("h", "diagonal", "elementwise", None)], [("D",)]),
    "pd_ssm": (None, [("h", "column_onehot_diagonal", "left", "N")], [("N",)]),
    "signed_perm_ssm": (None, [("h", "signed_permutation", "left", "N")], [("N",)]),
    "circulant_ssm": (None, [("h", "circulant", "left", "N")], [("N",)]),
    "monarch_ssm": (None, [("h", "monarch", "left", ("b", "b"))], [("b", "b")]),
    "cd_ssm": (None, [("h", "circulant_diagonal", "left", "N")], [("N",)]),
    "deltanet": ("H", [("S", "identity_minus_rank1", "left", "K")], [("V",)]),
}


def _load(src: str) -> ir.ScanIR:
    return load_spec(src, path="t.scan")


def _codes(src: str) -> list[str]:
    with pytest.raises(CompileError) as info:
        _load(src)
    return info.value.codes()


def test_zoo_is_exactly_the_documented_set():
    assert sorted(p.stem for p in OPS) == sorted(ZOO)


@pytest.mark.parametrize("path", OPS, ids=lambda p: p.stem)
def test_zoo_spec_ir(path):
    spec = load_spec(path)
    verify(spec)
    heads, updates, outputs = ZOO[path.stem]
    assert spec.name == path.stem
    assert spec.heads == heads
    got = [(u.state, u.transition.structure, u.transition.side, u.transition.size)
           for u in spec.updates]
    assert got == updates
    assert [o.expr.shape for o in spec.outputs] == outputs
    for name, size in spec.dims:
        assert 1 <= size <= 64, (name, size)


def test_gla_conventions():
    spec = load_spec(ROOT / "ops" / "gla.scan")
    assert [(i.name, i.shape) for i in spec.inputs] == [
        ("q", ("K",)), ("k", ("K",)), ("v", ("V",)), ("g", ("K",))]
    (upd,) = spec.updates
    coeff = upd.transition.coeff
    assert isinstance(coeff, ir.Index) and coeff.items == ("slice", "newaxis")
    assert coeff.shape == ("K", 1)
    assert isinstance(upd.inject, ir.SOuter) and upd.inject.shape == ("K", "V")
    (readout,) = spec.readouts
    assert isinstance(readout.expr, ir.SMatmul) and readout.expr.y.kind == "state"
    # no output line: the readout is the output
    assert spec.outputs == (ir.Output("o", ir.Ref("o", "readout", ("V",), True),
                                      readout.span),)


def test_per_head_params_and_static_lets():
    spec = load_spec(ROOT / "ops" / "retnet.scan")
    (p,) = spec.params
    assert p.per_head and p.shape == ()
    assert p.init.shape == ("H",)  # arange(H) is allowed in a param's init
    gamma = spec.lets[0]
    assert gamma.expr.varying is False
    assert spec.updates[0].transition.coeff == ir.Ref("gamma", "let", (), False)
    ssd = load_spec(ROOT / "ops" / "mamba2_ssd.scan")
    assert all(p.per_head for p in ssd.params)
    assert ssd.outputs[0].expr.shape == ("P",)


def test_selective_ssm_prologue_shapes():
    spec = load_spec(ROOT / "ops" / "selective_ssm.scan")
    lets = {x.name: x.expr for x in spec.lets}
    assert lets["a"].shape == ("D", "N") and lets["a"].varying
    assert lets["A"].shape == ("D", "N") and not lets["A"].varying
    a_log = spec.params[0]
    assert a_log.init.shape == (1, "N")
    readout = spec.readouts[0].expr
    assert isinstance(readout, ir.SSum) and readout.axis == -1 and readout.shape == ("D",)


def test_index_items_cover_every_axis_and_axes_are_negative():
    spec = _load("scan t\ndims D = 4, N = 3\ninput x : [D, N]\nlet a = x[0]\n"
                 "let b = x[:, None, 1]\nlet c = sum(x, axis=0)\nlet d = stack(a, a, axis=0)\n"
                 "let e = eye(N) @ x[1]\nlet f = roll(x, -1, axis=1)\n"
                 "state h : [N]\nh = h + e\nreadout y = h\n")
    lets = {x.name: x.expr for x in spec.lets}
    assert lets["a"].items == (0, "slice") and lets["a"].shape == ("N",)
    assert lets["b"].items == ("slice", "newaxis", 1) and lets["b"].shape == ("D", 1)
    assert lets["c"].axis == -2 and lets["c"].shape == ("N",)
    assert lets["d"].axis == -2 and lets["d"].shape == (2, "N")
    assert lets["e"].shape == ("N",)
    assert lets["f"].axis == -1 and lets["f"].extra == (-1,)
    assert spec.updates[0].transition.structure == "identity"


def test_user_semiring_translates_to_sympy():
    spec = _load("scan t\ndims D = 4\nsemiring mp over extended_reals {\n"
                 "  add(a, b) = max(a, b)\n  mul(a, b) = a + b\n  zero = -inf\n  one = 0\n}\n"
                 "input x : [D]\nstate h : [D]\nh = x * h + x\nreadout y = h\n")
    s = spec.semiring
    assert s.add == sympy.Max(ir.SEMIRING_X, ir.SEMIRING_Y)
    assert s.zero == -sympy.oo and s.one == 0 and s.domain == "extended_reals"
    assert {"add_is_max", "mul_is_plus", "idempotent_add"} <= s.facts
    lse = _load("scan t\ndims D = 4\nsemiring l {\n add(x, y) = log(exp(x) + exp(y))\n"
                " mul(x, y) = x + y\n zero = -inf\n one = 0\n}\ninput x : [D]\nstate h : [D]\n"
                "h = x * h + x\nreadout y = h\n").semiring
    assert "add_is_logaddexp" in lse.facts


def test_builtin_semiring_over_another_domain():
    spec = _load("scan t\ndims D = 4\nsemiring max_times over reals\ninput x : [D]\n"
                 "state h : [D]\nh = x * h + x\nreadout y = h\n")
    assert spec.semiring.domain == "reals" and "add_is_max" in spec.semiring.facts
    default = _load("scan t\ndims D = 4\ninput x : [D]\nstate h : [D]\nh = h + x\n"
                    "readout y = h\n")
    assert default.semiring.name == "real"


def test_right_side_and_product_classes():
    base = "scan t\ndims N = 4, V = 3\ninput P : [N, N]\ninput d : [N]\ninput c : [N]\n"
    right = _load(base + "state h : [V, N]\nh = h @ perm(P) @ diag(d)\nreadout y = h\n")
    t = right.updates[0].transition
    assert (t.side, t.structure, t.size) == ("right", "monomial", "N")
    assert [f.kind for f in t.factors] == ["perm", "diag"]
    dense = _load(base + "state h : [N]\nh = dense(P) @ diag(d) @ h\nreadout y = h\n")
    assert dense.updates[0].transition.structure == "dense"
    assert _codes(base + "state h : [N]\nh = circulant(c) @ perm(P) @ h\nreadout y = h\n") \
        == ["E0505"]


CODES = [
    ("let a = exp(x) + B", "E0301"),
    ("let a = x @ B", "E0302"),
    ("let a = sum(x, axis=3)", "E0303"),
    ("let a = sum(x)", "E0305"),
    ("let a = x[0, 0]", "E0304"),
    ("let a = frob(x)", "E0306"),
    ("let a = x ⊕ x", "E0402"),
    ("let a = nope + 1", "E0201"),
    ("let x = 1", "E0202"),
    ("let a = randn()", "E0404"),
    ("let a = 1e999", "E0212"),
    ("input z : [Q]", "E0206"),
    ("dims Z = 0", "E0210"),
    ("dims Z = 4096, W = 8192\ninput z : [Z, W]", "E0211"),
    ("let lambda = 1", "E0203"),
    ("let torch = 1", "E0203"),
    ("let ｘ = 1", "E0204"),
]


@pytest.mark.parametrize("line,code", CODES, ids=[c[1] + ":" + c[0][:12] for c in CODES])
def test_real_line_mistakes(line, code):
    src = f"scan t\ndims D = 4, N = 3\ninput x : [D]\ninput B : [N]\n{line}\n" \
          "state h : [D]\nh = h + x\nreadout y = h\n"
    assert _codes(src) == [code]


UPDATE_CODES = [
    ("h = exp(x) * h + x", "E0401"),
    ("h = x * h + 1", "E0403"),
    ("h = x * h - x", "E0403"),
    ("h = x * h + x * h", "E0501"),
    ("h = h * h + x", "E0501"),
    ("h = x", "E0501"),
    ("h = M @ h + x", "E0502"),
    ("h = diag(x) @ h @ diag(x)", "E0505"),
    ("h = diag(B) @ h + x", "E0504"),
    ("h = B * h + x", "E0504"),
    ("h = h + M", "E0504"),
    ("g = h + x", "E0207"),
]


@pytest.mark.parametrize("line,code", UPDATE_CODES, ids=[c[1] for c in UPDATE_CODES])
def test_update_mistakes(line, code):
    src = f"scan t\ndims D = 4, N = 3\ninput x : [D]\ninput B : [N]\ninput M : [D, D]\n" \
          f"state h : [D]\n{line}\nreadout y = h\n"
    codes = _codes(src)
    assert codes[0] == code
    if code == "E0207":  # the stray update is refused and h is then never updated
        assert codes == ["E0207", "E0207"]


def test_identity_minus_outer_needs_additive_inverses():
    body = ("dims K = 4\ninput k : [K]\nstate S : [K, K]\n"
            "S = (identity - outer(k, k)) @ S + outer(k, k)\nreadout o = S\n")
    ok = _load("scan t\nsemiring real\n" + body)
    assert ok.updates[0].transition.structure == "identity_minus_rank1"
    assert _codes("scan t\nsemiring tropical\n" + body) == ["E0503"]


def test_all_diagnostics_of_a_file_are_reported():
    src = ("scan t\ndims D = 4\ninput x : [D]\nlet a = nope\nlet b = a + 1\nlet c = x ⊕ x\n"
           "state h : [D]\nh = h + x\nreadout y = h\noutput z = h\n")
    with pytest.raises(CompileError) as info:
        _load(src)
    # `b` uses the failed `a`: no knock-on diagnostic for it
    assert [(d.code, d.span.line) for d in info.value.diagnostics] == [
        ("E0201", 4), ("E0402", 6), ("E0404", 10)]


def test_structure_problems():
    assert _codes("dims D = 4\n") == ["E0205"]
    assert _codes("scan t\ndims D = 4\nstate h : [D]\nreadout y = h\n") == ["E0207"]
    assert _codes("scan t\ndims D = 4\nheads H\n") == ["E0208"]
    assert _codes("scan t\ndims D = 4, H = 2\nheads H\ninput x : [H, D]\n"
                  "state h : [D]\nh = h\nreadout y = h\n") == ["E0208"]
    assert _codes("scan t\ndims H = 2, K = 4\ninput q : [H, K]\nheads H\nstate h : [K]\n"
                  "h = h + q[0]\nreadout y = h\n") == ["E0208"]
    assert _codes("scan t\nsemiring nope\n") == ["E0209"]
    assert _codes("scan t\nsemiring s {\n add(x, y) = x + y\n}\n") == ["E0209"]


def test_verify_rejects_broken_ir():
    spec = load_spec(ROOT / "ops" / "hgrn.scan")
    upd = spec.updates[0]
    real_in_semiring = dataclasses.replace(
        upd, inject=ir.Call("exp", (ir.Ref("x", "input", ("D",), True),), ("D",), True))
    with pytest.raises(IRError, match="Call inside a semiring"):
        verify(dataclasses.replace(spec, updates=(real_in_semiring,)))
    bad_ref = dataclasses.replace(upd, inject=ir.Ref("zz", "input", ("D",), True))
    with pytest.raises(IRError, match="unknown ref"):
        verify(dataclasses.replace(spec, updates=(bad_ref,)))
    let = spec.lets[0]
    pos_axis = dataclasses.replace(let, expr=ir.Call("sum", let.expr.args, (), True, axis=0))
    with pytest.raises(IRError, match="axis must be negative"):
        verify(dataclasses.replace(spec, lets=(pos_axis,)))
    bad_shape = dataclasses.replace(let, expr=dataclasses.replace(let.expr, shape=("D", "D")))
    with pytest.raises(IRError):
        verify(dataclasses.replace(spec, lets=(bad_shape,)))


def test_language_doc_example_is_the_zoo_spec():
    doc = (ROOT / "docs" / "language.md").read_text(encoding="utf-8")
    example = doc.split("```\n", 2)[1]
    spec = _load(example)
    zoo = load_spec(ROOT / "ops" / "selective_ssm.scan")
    assert [x.name for x in spec.lets] == [x.name for x in zoo.lets]
    assert [x.expr for x in spec.lets] == [x.expr for x in zoo.lets]
    assert [x.init for x in spec.params] == [x.init for x in zoo.params]
    assert spec.outputs[0].expr == zoo.outputs[0].expr


def test_verify_checks_transition_size():
    spec = load_spec(ROOT / "ops" / "circulant_ssm.scan")
    upd = spec.updates[0]
    wrong = dataclasses.replace(upd, transition=dataclasses.replace(upd.transition, size=4))
    with pytest.raises(IRError, match="does not match"):
        verify(dataclasses.replace(spec, updates=(wrong,)))


def test_language_doc_names_every_builtin_and_constructor():
    from madc.sema_expr import CONSTRUCTORS, REAL_CALLABLE

    doc = (ROOT / "docs" / "language.md").read_text(encoding="utf-8")
    missing = [n for n in sorted(REAL_CALLABLE | set(CONSTRUCTORS)) if n not in doc]
    assert missing == []


def test_a_refused_dim_gives_no_knock_on_diagnostics():
    src = "scan t\ndims D = 0\ninput x : [D]\nstate h : [D]\nh = h + x\nreadout y = h\n"
    assert _codes(src) == ["E0210"]
