"""Hostile specs and hostile files: each is refused with a diagnostic, never run, never a
traceback. Spec names, numbers and dims reach emitted Python only after these checks."""

from __future__ import annotations

import os

import pytest

from madc.errors import CompileError
from madc.frontend import MAX_SOURCE_BYTES, load_spec

HEADER = "scan t\ndims D = 4\ninput x : [D]\n"
FOOTER = "state h : [D]\nh = h + x\nreadout y = h\n"


def _refused(src, **kw) -> list[str]:
    with pytest.raises(CompileError) as info:
        load_spec(src, **kw)
    text = info.value.render()
    assert "Traceback" not in text and text.count("error[") == len(info.value.diagnostics)
    return info.value.codes()


NAMES = [
    ("let __import__ = x", "E0203"),
    ("let __class__ = x", "E0203"),
    ("let __builtins__ = x", "E0203"),
    ("let lambda = x", "E0203"),
    ("let class = x", "E0203"),
    ("let match = x", "E0203"),  # soft keyword
    ("let self = x", "E0203"),
    ("let torch = x", "E0203"),
    ("let tl = x", "E0203"),
    ("let inputs = x", "E0203"),
    ("let params = x", "E0203"),
    ("let eval = x", "E0203"),
    ("let exec = x", "E0203"),
    ("let open = x", "E0203"),
    ("let os = x", "E0203"),
    ("let identity = x", "E0203"),
    ("let exp = x", "E0203"),
    ("let \u0430 = x", "E0204"),  # Cyrillic a
    ("let x\u0131 = x", "E0204"),  # dotless i
    ("let \uff58 = x", "E0204"),  # fullwidth x
    ("let caf\u00e9 = x", "E0204"),
]


@pytest.mark.parametrize("line,code", NAMES, ids=[n[0][4:].split()[0].encode(
    "ascii", "backslashreplace").decode() for n in NAMES])
def test_hostile_names_are_refused(line, code):
    assert _refused(HEADER + line + "\n" + FOOTER) == [code]


def test_hostile_scan_and_dim_names():
    assert _refused("scan __import__\n" + HEADER[7:] + FOOTER) == ["E0203"]
    assert _refused("scan class\n" + HEADER[7:] + FOOTER) == ["E0203"]
    assert _refused("scan t\ndims self = 4\n") == ["E0203"]
    assert _refused("scan t\nsemiring __import__ {\n add(x, y) = x + y\n mul(x, y) = x * y\n"
                    " zero = 0\n one = 1\n}\n" + HEADER[7:] + FOOTER) == ["E0203"]


TEXT = [
    ("scan __import__('os')\n", "E0101"),
    ("scan t\nlet a = 'x'\n", "E0102"),
    ('scan t\nlet a = "; import os"\n', "E0102"),
    ("scan t\nlet a = x \\ x\n", "E0102"),
    ("scan t\u200b\n", "E0102"),  # zero-width space
    ("scan t\nlet a = x;\n", "E0102"),
    ("scan t\nlet a = x\\\n", "E0103"),  # a continuation into the end of the file
    ("scan t\nlet a = `x`\n", "E0102"),
    ("scan t\nlet a = x.__class__\n", "E0102"),
    ("scan t\nlet a = lambda: 1\n", "E0101"),
]


@pytest.mark.parametrize("src,code", TEXT, ids=range(len(TEXT)))
def test_quotes_backslashes_and_python_syntax_are_refused(src, code):
    assert _refused(src)[0] == code


NUMBERS = [
    ("let a = x * 1e999", "E0212"),
    ("let a = x * 99999999999999999999999999e300", "E0212"),
    ("let a = x[99999999999999]", "E0304"),
    ("let a = roll(x, 99999999999999, axis=0)", "E0305"),
    ("let a = sum(x, axis=99999999999999)", "E0303"),
    ("param p : [D] init uniform(-1e999, 1)", "E0305"),
    ("param p : [D] init uniform(3, 1)", "E0305"),
    ("input z : [0]", "E0210"),
    ("input z : [2.5]", "E0210"),
    ("input z : [99999999999]", "E0210"),
    ("let e = eye(99999999)", "E0305"),
]


@pytest.mark.parametrize("line,code", NUMBERS, ids=[n[1] + "-" + str(i) for i, n in
                                                   enumerate(NUMBERS)])
def test_huge_numbers_are_refused(line, code):
    assert _refused(HEADER + line + "\n" + FOOTER) == [code]


def test_dims_that_would_allocate_terabytes_are_refused():
    assert _refused("scan t\ndims D = 1e30\n") == ["E0210"]
    assert _refused("scan t\ndims D = 99999999999999999999999\n") == ["E0210"]
    big = "scan t\ndims D = 1048576, N = 1048576\ninput x : [D]\n"
    assert _refused(big + "state h : [D, N]\nh = h + x[:, None]\nreadout y = h\n") == ["E0211"]
    assert _refused(big + "let e = eye(D)\nstate h : [D]\nh = h + x\nreadout y = h\n") \
        == ["E0211"]
    assert _refused("scan t\ndims D = 512\ninput x : [D, D, D]\n") == ["E0211"]
    heads = "scan t\ndims H = 65536, D = 512\nheads H\nparam p : [H, D] init 1\n"
    assert _refused(heads) == ["E0211"]


def test_bad_files(tmp_path):
    assert _refused(tmp_path / "missing.scan") == ["E0001"]
    assert _refused(str(tmp_path)) == ["E0001"]  # a directory
    (tmp_path / "d.scan").mkdir()
    assert _refused(tmp_path / "d.scan") == ["E0001"]
    binary = tmp_path / "bin.scan"
    binary.write_bytes(bytes(range(256)) * 4)
    assert _refused(binary) == ["E0002"]
    nul = tmp_path / "nul.scan"
    nul.write_bytes(b"scan t\n\x00\n")
    assert _refused(nul) == ["E0002"]
    empty = tmp_path / "empty.scan"
    empty.write_bytes(b"")
    assert _refused(empty) == ["E0004"]
    huge = tmp_path / "huge.scan"
    huge.write_bytes(b"scan t\n" + b"# padding\n" * (10 * 1024 * 1024 // 10))
    assert _refused(huge) == ["E0003"]
    assert _refused("scan t\n" + "#" * MAX_SOURCE_BYTES + "\n") == ["E0003"]
    bom = tmp_path / "bom.scan"
    bom.write_bytes(b"\xef\xbb\xbf" + (HEADER + FOOTER).encode())
    assert load_spec(bom).name == "t"
    assert _refused(12345) == ["E0001"]
    assert _refused("a\x00b.scan") == ["E0001"]
    assert _refused("x" * 5000 + ".scan") == ["E0001"]
    fifo = tmp_path / "pipe.scan"
    os.mkfifo(fifo)
    assert _refused(fifo) == ["E0001"]  # refused without blocking on the read


@pytest.mark.parametrize("body", [
    "let a = " + "(" * 5000 + "x" + ")" * 5000,
    "let a = " + "-" * 20000 + "x",
    "let a = " + " + ".join(["x"] * 20000),
    "let a = " + "x[None]" + "[None]" * 3000,
    "let a = " + "exp(" * 3000 + "x" + ")" * 3000,
], ids=["parens", "minus", "long-sum", "subscripts", "calls"])
def test_deep_nesting_is_a_diagnostic(body):
    assert _refused(HEADER + body + "\n" + FOOTER)[0] == "E0005"


def test_unicode_in_comments_and_semiring_operators_is_accepted():
    spec = load_spec(HEADER + "# comment: ünïcödé ∀ 💥\nstate h : [D]\nh = x ⊗ h ⊕ x\n"
                     "readout y = h\n")
    assert spec.updates[0].transition.structure == "diagonal"


@pytest.mark.parametrize("const,code", [("10 ** 10 ** 10", "E0212"), ("2 ** 65", "E0212"),
                                        ("1" + " + 1" * 60, "E0209"), ("2 ** inf", "E0212"),
                                        ("1 / 0", "E0209"), ("log(-1)", "E0209")])
def test_semiring_constants_that_would_not_finish_are_refused(const, code):
    src = (f"scan t\nsemiring s {{\n add(x, y) = x + y\n mul(x, y) = x * y\n zero = {const}\n"
           " one = 1\n}\n" + HEADER[7:] + FOOTER)
    assert _refused(src) == [code]
