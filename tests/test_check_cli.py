"""`madc check`: exit codes, the human table, the JSON schema of docs/checker.md, and the
verdict of every spec in the operator zoo."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

import madc.check
from madc.algebra import Check, Report
from madc.check import main_check

OPS = Path(__file__).resolve().parent.parent / "ops"
REFUTED_OPS = {"monarch_ssm": "monarch", "cd_ssm": "circulant_diagonal",
               "deltanet": "identity_minus_rank1"}

USER_SEMIRING = """scan mt_ssm
dims D = 4
semiring mt over {domain} {{
  add(x, y) = max(x, y)
  mul(x, y) = x * y
  zero = 0
  one = 1
}}
input a : [D]
input x : [D]
state h : [D]
h = a * h + x
readout y = h
"""


def run(paths, json_out=False, strict=False):
    out, err = io.StringIO(), io.StringIO()
    code = main_check([str(p) for p in paths], json_out=json_out, strict=strict, stdout=out,
                      stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_gla_is_proved_and_exits_0():
    code, out, err = run([OPS / "gla.scan"])
    assert code == 0, err
    table = out.split("\n\nbackends\n")[0]
    rows = [line.split() for line in table.splitlines()[1:]]
    assert "closure.S" in out and {row[2] for row in rows} == {"proved"}
    assert out.splitlines()[0].split() == ["spec", "check", "verdict", "detail"]


def test_monarch_exits_1_with_a_printed_counterexample():
    code, out, _ = run([OPS / "monarch_ssm.scan"])
    assert code == 1
    assert "refuted" in out and "counterexample (monarch, n=4)" in out and "A @ B" in out
    assert "why:" in out


def test_syntax_error_exits_2_with_position_and_caret(tmp_path):
    bad = tmp_path / "bad.scan"
    bad.write_text("scan broken\ndims D = \n")
    code, out, err = run([bad])
    assert code == 2
    assert f"{bad}:2:" in err and "^" in err and "Traceback" not in err + out


@pytest.mark.parametrize("name", ["missing.scan", "not_a_spec.txt", ""])
def test_unreadable_files_exit_2(tmp_path, name):
    code, out, err = run([tmp_path / name] if name else [tmp_path])
    assert code == 2 and "error" in err and "Traceback" not in err + out


def test_an_error_anywhere_wins_over_refuted(tmp_path):
    code, _, _ = run([OPS / "monarch_ssm.scan", tmp_path / "missing.scan"])
    assert code == 2


def test_json_schema_and_counterexample_reevaluates():
    code, out, _ = run([OPS / "gla.scan", OPS / "monarch_ssm.scan"], json_out=True)
    data = json.loads(out)
    assert code == 1 and data["exit_code"] == 1 and data["schema"] == "madc-check/1"
    gla, monarch = data["files"]
    assert set(gla) == {"path", "spec", "checks", "status", "backends"}
    assert gla["status"] == "proved" and monarch["status"] == "refuted"
    for check in gla["checks"] + monarch["checks"]:
        assert set(check) == {"name", "verdict", "counterexample", "detail"}
    (closure,) = [c for c in monarch["checks"] if c["name"] == "closure.h"]
    cex = closure["counterexample"]
    a, b, p = (np.array(cex[k], dtype=np.float64) for k in ("A", "B", "product"))
    assert (a @ b == p).all()
    blocks = p.reshape(2, 2, 2, 2)  # [i1, i2, j1, j2]: Monarch blocks are rank 1
    assert max(np.linalg.matrix_rank(blocks[:, i, j, :]) for i in range(2) for j in range(2)) > 1


def test_json_reports_diagnostics_of_bad_files(tmp_path):
    bad = tmp_path / "bad.scan"
    bad.write_text("scan broken\ndims D = \n")
    code, out, _ = run([bad], json_out=True)
    (entry,) = json.loads(out)["files"]
    assert code == 2 and entry["status"] == "error" and entry["checks"] == []
    assert entry["diagnostics"][0]["line"] == 2 and entry["diagnostics"][0]["code"]


@pytest.mark.parametrize("domain, expected", [("reals", 1), ("nonneg", 0)])
def test_user_defined_max_times_depends_on_the_domain(tmp_path, domain, expected):
    spec = tmp_path / f"mt_{domain}.scan"
    spec.write_text(USER_SEMIRING.format(domain=domain))
    code, out, err = run([spec])
    assert code == expected, out + err
    if expected:
        assert "counterexample: a=-1, b=0, c=1" in out


def test_strict_refuses_unproven(monkeypatch):
    unproven = Check("closure.h", "unproven", None, "no counterexample in 200 random pairs")

    def fake_check_ir(ir):
        return Report(ir.name, ir.path, (unproven,))

    monkeypatch.setattr(madc.check, "check_ir", fake_check_ir)
    code, _, err = run([OPS / "gla.scan"])
    assert code == 0 and "warning" in err and "unproven" in err
    code, _, err = run([OPS / "gla.scan"], strict=True)
    assert code == 1 and "error" in err


def test_every_zoo_spec_gets_its_verdict():
    specs = sorted(OPS.glob("*.scan"))
    assert len(specs) >= 16
    code, out, err = run(specs, json_out=True)
    assert code == 1, err
    for entry in json.loads(out)["files"]:
        name = Path(entry["path"]).stem
        if name in REFUTED_OPS:
            assert entry["status"] == "refuted", name
            refuted = [c for c in entry["checks"] if c["verdict"] == "refuted"]
            assert [c["name"].split(".")[0] for c in refuted] == ["closure"], name
            assert refuted[0]["counterexample"]["class"] == REFUTED_OPS[name]
        else:
            assert entry["status"] == "proved", (name, entry["checks"])


def test_check_names_the_triton_family_and_the_missing_tensor_core_path():
    spec = Path(__file__).parent / "specs" / "trop_attn.scan"
    code, text, err = run([spec, OPS / "gla.scan"])
    assert code == 0, err
    assert "gla: triton: triton_attention" in text
    assert "trop_attn: triton: triton_vector; no tensor-core path: the tropical" in text
