"""Tests of `madc fuzz` (madc/fuzz.py, madc/repro.py): the comparison rules, the value
distributions, the repro literal, the CLI's usage errors, and CI-sized fuzz runs of every
accepted spec in ops/ on the chunked backend (and the Triton backend under TRITON_INTERPRET=1).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch

from madc import semiring
from madc.fuzz import add_fuzz_arguments, input_dists, main_fuzz, state_dists
from madc.repro import (
    LOWP_FACTOR,
    TOLERANCES,
    Case,
    _literal,
    compare,
    draw,
    rel_error,
)

ROOT = Path(__file__).resolve().parent.parent
OPS = ROOT / "ops"
#: Specs the algebra checker refuses (closure): not fuzzed.
REFUTED = {"monarch_ssm", "cd_ssm", "deltanet"}

# --------------------------------------------------------------------------- comparison rules


def _t(*values):
    return torch.tensor(values, dtype=torch.float64)


def test_compare_accepts_equal_and_within_tolerance():
    want = _t(1.0, -2.0, 3.0)
    assert compare("output y", "output", want.clone(), want, None, "fp32").ok
    tol = TOLERANCES["fp32"]["output"]
    near = want + _t(0.0, 0.0, 3.0 * tol * 0.5)  # error 0.5 tol relative to max |want| = 3
    f = compare("output y", "output", near, want, None, "fp32")
    assert f.ok and f.error == pytest.approx(0.5 * tol)


def test_compare_rejects_error_over_tolerance():
    want = _t(1.0, -2.0, 3.0)
    tol = TOLERANCES["bf16"]["grad"]
    f = compare("grad x", "grad", want + _t(0.0, 3.0 * tol * 1.5, 0.0), want, None, "bf16")
    assert not f.ok and f.error == pytest.approx(1.5 * tol)


def test_compare_nan_where_reference_finite_fails():
    f = compare("output y", "output", _t(1.0, math.nan), _t(1.0, 2.0), None, "fp32")
    assert not f.ok and "NaN" in f.problem


def test_compare_inf_positions_must_match():
    want = _t(-math.inf, 1.0)
    assert compare("state h", "state", _t(-math.inf, 1.0), want, None, "fp32").ok
    assert not compare("state h", "state", _t(-1e30, 1.0), want, None, "fp32").ok
    assert not compare("state h", "state", _t(math.inf, 1.0), want, None, "fp32").ok
    assert not compare("state h", "state", _t(-math.inf, -math.inf), _t(-math.inf, 1.0), None,
                       "fp32").ok


def test_compare_nan_in_reference_is_not_judged():
    assert compare("grad x", "grad", _t(5.0, 1.0), _t(math.nan, 1.0), None, "fp32").ok


def test_compare_beyond_dtype_range_may_overflow_with_same_sign():
    want = _t(1e6, 1.0)  # beyond fp16's largest finite value
    assert compare("output y", "output", _t(math.inf, 1.0), want, None, "fp16").ok
    assert not compare("output y", "output", _t(-math.inf, 1.0), want, None, "fp16").ok


def test_compare_shape_and_missing_gradient():
    assert not compare("output y", "output", _t(1.0), _t(1.0, 2.0), None, "fp32").ok
    assert not compare("grad x", "grad", None, _t(0.0, 1.0), None, "fp32").ok
    assert compare("grad x", "grad", None, _t(0.0, 0.0), None, "fp32").ok
    assert not compare("grad x", "grad", _t(1.0), None, None, "fp32").ok


def test_compare_allows_the_low_precision_reference_error_times_factor():
    want = _t(1.0, 1.0)
    lowp = _t(1.0, 1.2)  # the sequential reference in this dtype is 20% off
    got = _t(1.0, 1.0 + 0.2 * LOWP_FACTOR * 0.9)
    assert compare("output y", "output", got, want, lowp, "bf16").ok
    got = _t(1.0, 1.0 + 0.2 * LOWP_FACTOR * 1.1)
    assert not compare("output y", "output", got, want, lowp, "bf16").ok


def test_compare_allows_the_nudged_reference_movement_times_factor():
    want = _t(1.0, 1.0)
    nudged = _t(1.0, 1.1)  # the exact answer moves 10% when its data move by one roundoff
    got = _t(1.0, 1.0 + 0.1 * LOWP_FACTOR * 0.9)
    assert not compare("output y", "output", got, want, None, "bf16").ok
    assert compare("output y", "output", got, want, None, "bf16", nudged=nudged).ok
    got = _t(1.0, 1.0 + 0.1 * LOWP_FACTOR * 1.1)
    assert not compare("output y", "output", got, want, None, "bf16", nudged=nudged).ok


def test_perturbed_reference_moves_data_by_one_roundoff_and_restores_params():
    from madc.repro import _perturbed, _reference, case_tensors, module_runner

    source = (ROOT / "ops" / "hgrn.scan").read_text()
    case = Case(dtype="bf16", batch=2, length=9, dims=(("D", 4),), seed=5)
    ref64, params = _reference(source, dict(case.dims), {})
    runner = module_runner(ref64)
    before = {n: p.detach().clone() for n, p in runner.params.items()}
    inputs, init, cu = case_tensors(ref64, case)
    nudged = _perturbed(runner, case, params, inputs, init, cu, None)
    plain = _perturbed(runner, Case(dtype="fp32", batch=2, length=9, dims=(("D", 4),), seed=5),
                       params, inputs, init, cu, None)
    assert nudged is not None and plain is not None
    moved_bf16 = rel_error(nudged[0][0], plain[0][0])
    u = torch.finfo(torch.bfloat16).eps / 2
    assert 0 < moved_bf16 < 50 * u  # a well-conditioned scan moves by a few roundoffs
    assert all(torch.equal(p, before[n]) for n, p in runner.params.items())


def test_rel_error_is_relative_to_the_largest_reference_value():
    assert rel_error(_t(1.0, 10.5), _t(1.0, 10.0)) == pytest.approx(0.05)
    assert rel_error(_t(0.0), _t(0.0)) == 0.0
    assert rel_error(_t(math.nan, 1.0), _t(1.0, 1.0)) == math.inf


# --------------------------------------------------------------------------- value generation


def test_draw_is_seeded_and_rounded_through_the_dtype():
    a = draw("normal", (4, 5), "bf16", torch.Generator().manual_seed(3))
    b = draw("normal", (4, 5), "bf16", torch.Generator().manual_seed(3))
    assert a.dtype == torch.float64 and torch.equal(a, b)
    assert torch.equal(a, a.to(torch.bfloat16).to(torch.float64))
    c = draw("normal", (4, 5), "bf16", torch.Generator().manual_seed(4))
    assert not torch.equal(a, c)


@pytest.mark.parametrize("dist", ["normal", "zeros", "large", "tiny", "ties", "neg_inf",
                                  "pos_inf", "nonneg", "unit", "boolean", "positive"])
def test_draw_distributions_have_their_defining_property(dist):
    x = draw(dist, (64, 64), "fp32", torch.Generator().manual_seed(0))
    finite = x[torch.isfinite(x)]
    checks = {
        "normal": lambda: 0.5 < float(finite.std()) < 2,
        "zeros": lambda: bool((x == 0).all()),
        "large": lambda: float(finite.abs().max()) > 10,
        "tiny": lambda: 0 < float(finite.abs().max()) < 1e-2,
        "ties": lambda: x.unique().numel() <= 5,
        "neg_inf": lambda: bool((x == -math.inf).any()) and not bool((x == math.inf).any()),
        "pos_inf": lambda: bool((x == math.inf).any()) and not bool((x == -math.inf).any()),
        "nonneg": lambda: bool((x >= 0).all()),
        "unit": lambda: bool(((x >= 0) & (x <= 1)).all()),
        "boolean": lambda: set(x.unique().tolist()) == {0.0, 1.0},
        "positive": lambda: bool((x > 0).all()),
    }
    assert checks[dist]()


def test_distributions_follow_semiring_facts():
    assert "neg_inf" in input_dists(semiring.builtin("log").facts)
    assert {"ties", "neg_inf"} <= set(input_dists(semiring.builtin("tropical").facts))
    assert {"ties", "pos_inf"} <= set(input_dists(semiring.builtin("min_plus").facts))
    real = input_dists(semiring.builtin("real").facts)
    assert not {"ties", "neg_inf", "pos_inf"} & set(real)
    assert state_dists(semiring.builtin("max_times")) == ("nonneg",)
    assert state_dists(semiring.builtin("boolean")) == ("boolean",)
    assert "neg_inf" in state_dists(semiring.builtin("tropical"))


def test_case_json_round_trip():
    case = Case(dtype="bf16", batch=2, length=7, lengths=(3, 4), dims=(("D", 3),),
                dists=(("x", "ties"),), initial_state="neg_inf", chunk_size=3, seed=11)
    assert Case.from_json(case.to_json()) == case


@pytest.mark.parametrize("text", ["scan a\nx = 1\n", "a\\b", "it's'", "x'''y", "one",
                                  "tab\tand\r\ncrlf", "\u2295 \u2297 unicode"])
def test_repro_literal_round_trips(text):
    assert eval(_literal(text)) == text  # noqa: S307 - the point is that it evaluates exactly


# --------------------------------------------------------------------------- the command


def _args(argv):
    import argparse

    parser = argparse.ArgumentParser()
    add_fuzz_arguments(parser)
    return parser.parse_args(argv)


def test_cli_usage_errors_exit_2(tmp_path, capsys):
    assert main_fuzz(_args([])) == 2
    assert main_fuzz(_args([str(tmp_path / "missing.scan")])) == 2
    bad = tmp_path / "bad.scan"
    bad.write_text("scan bad\nthis is not a spec\n")
    assert main_fuzz(_args([str(bad)])) == 2
    err = capsys.readouterr().err
    assert "bad.scan:" in err and "Traceback" not in err
    spec = str(OPS / "hgrn.scan")
    assert main_fuzz(_args([spec, "--dim", "Q=3"])) == 2
    assert main_fuzz(_args([spec, "--dim", "D=x"])) == 2
    assert main_fuzz(_args([spec, "--examples", "0"])) == 2
    err = capsys.readouterr().err
    assert "unknown dim 'Q'" in err and "NAME=VALUE" in err and "Traceback" not in err


# --------------------------------------------------------------------------- fuzz runs

ACCEPTED = sorted(p.stem for p in OPS.glob("*.scan") if p.stem not in REFUTED)


def _fuzz(argv, capsys):
    rc = main_fuzz(_args(argv))
    captured = capsys.readouterr()
    return rc, captured.out + captured.err


@pytest.mark.parametrize("spec", ACCEPTED)
def test_fuzz_chunked_ci_sized(spec, tmp_path, capsys):
    rc, printed = _fuzz([str(OPS / f"{spec}.scan"), "--backend", "chunked", "--device", "cpu",
                         "--examples", "8", "--max-length", "48", "--seed", "0",
                         "--shrink-seconds", "20", "--out", str(tmp_path)], capsys)
    assert rc == 0, printed
    assert "8 examples" in printed and "0 failures" in printed


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("MADC_SLOW") != "1", reason="slow: set MADC_SLOW=1")
@pytest.mark.parametrize("spec", ACCEPTED)
def test_fuzz_chunked_50_examples(spec, tmp_path, capsys):
    rc, printed = _fuzz([str(OPS / f"{spec}.scan"), "--backend", "chunked", "--device", "cpu",
                         "--examples", "50", "--seed", "1", "--out", str(tmp_path)], capsys)
    assert rc == 0, printed


@pytest.mark.parametrize("spec", ["hgrn", "gla", "tropical_ssm"])
def test_fuzz_triton_interpreted(spec, tmp_path, capsys):
    if os.environ.get("TRITON_INTERPRET") != "1" and not torch.cuda.is_available():
        pytest.skip("Triton needs CUDA or TRITON_INTERPRET=1")
    rc, printed = _fuzz([str(OPS / f"{spec}.scan"), "--backend", "triton", "--device", "cpu",
                         "--examples", "4", "--max-length", "24", "--seed", "0",
                         "--shrink-seconds", "20", "--out", str(tmp_path)], capsys)
    if rc == 2 and "unavailable" in printed:
        pytest.skip(printed.strip().splitlines()[-1])
    assert rc == 0, printed


def test_front_end_mode_dispatches_to_the_front_end_fuzzer(tmp_path, capsys):
    rc, printed = _fuzz(["--front-end", "--examples", "3", "--seed", "0", "--out",
                         str(tmp_path)], capsys)
    assert rc == 0, printed
    assert "3" in printed


def test_candidate_that_runs_nothing_is_a_setup_error(tmp_path, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "__init__.py").write_text("")
    (broken / "chunked.py").write_text(
        "def scan(inputs, params, dims, initial_state=None, cu_seqlens=None, **options):\n"
        "    raise RuntimeError('no kernel here')\n")
    rc, printed = _fuzz([str(OPS / "hgrn.scan"), "--module", str(broken / "chunked.py"),
                         "--examples", "3", "--out", str(tmp_path / "out")], capsys)
    assert rc == 2 and "unavailable" in printed and "no kernel here" in printed, printed


def test_near_zero_quantity_is_judged_against_the_floor_of_its_kind():
    from madc.repro import scale_floor

    want_q, want_g = _t(3.0, -5.0), _t(0.0, 0.0)  # grad g cancels exactly in float64
    floor = scale_floor([want_q, want_g])
    assert floor == pytest.approx(0.5)
    noise = _t(2e-6, -1e-6)  # fp32 rounding noise of a cancelling sum
    assert not compare("grad g", "grad", noise, want_g, None, "fp32").ok
    assert compare("grad g", "grad", noise, want_g, None, "fp32", floor).ok
    wrong = _t(0.1, 0.0)  # a real error (2% of the largest gradient) is still caught
    assert not compare("grad g", "grad", wrong, want_g, None, "fp32", floor).ok


@pytest.mark.parametrize("spec, gates", [("gla", {"g"}), ("hgrn", {"g"}), ("selective_ssm", set()),
                                         ("mamba2_ssd", set()), ("log_ssm", set())])
def test_log_space_gates_are_found_from_the_ir(spec, gates):
    from madc.frontend import load_spec
    from madc.fuzz_check import log_gates

    assert set(log_gates(load_spec(str(OPS / f"{spec}.scan")))) == gates


def test_non_finite_candidate_is_excused_only_where_the_dtype_reference_fails_too():
    want = _t(0.0, 1.0)
    got = _t(math.nan, 1.0)
    assert not compare("grad w", "grad", got, want, _t(0.0, 1.0), "fp16").ok
    assert compare("grad w", "grad", got, want, _t(math.nan, 1.0), "fp16").ok
    assert not compare("grad w", "grad", _t(math.nan, math.nan), want, _t(math.nan, 1.0),
                       "fp16").ok


def test_selective_semiring_low_precision_gradients_are_reported_not_judged():
    from types import SimpleNamespace

    from madc.repro import _judge

    ref = SimpleNamespace(outputs=("y",), state_shapes={"h": (2,)})
    want = ([_t(1.0, 2.0)], [_t(2.0, 0.5)], {"grad input x": _t(1.0, 0.0)})
    flipped = ([_t(1.0, 2.0)], [_t(2.0, 0.5)], {"grad input x": _t(0.0, 1.0)})  # argmax flip
    for dtype, selective, ok in [("bf16", True, True), ("fp32", True, False),
                                 ("bf16", False, False)]:
        findings = _judge(ref, Case(dtype=dtype), flipped, want, None, selective)
        assert all(f.ok for f in findings) == ok, (dtype, selective)
    wrong_output = ([_t(1.0, 3.0)], [_t(2.0, 0.5)], want[2])
    assert not all(f.ok for f in _judge(ref, Case(dtype="bf16"), wrong_output, want, None, True))


def test_refuted_spec_needs_allow_promotion(tmp_path, capsys):
    spec = str(OPS / "deltanet.scan")
    rc, printed = _fuzz([spec, "--backend", "chunked", "--device", "cpu", "--examples", "2",
                         "--out", str(tmp_path)], capsys)
    assert rc == 2 and "deltanet.scan:" in printed and "E0901" in printed
    assert "<input>" not in printed
    rc, printed = _fuzz([spec, "--backend", "chunked", "--device", "cpu", "--examples", "4",
                         "--max-length", "24", "--allow-promotion", "--dim", "K=4",
                         "--dim", "V=4", "--out", str(tmp_path)], capsys)
    assert rc == 0 and "0 failures" in printed, printed


def test_sticky_device_error_stops_the_run_without_shrinking(tmp_path, monkeypatch):
    """An illegal memory access poisons the CUDA context: every later example would fail the
    same way (seen on an H100: 182 of 200), so the run stops at the first and keeps it."""
    import madc.fuzz as fuzz_module
    from madc.repro import CaseResult

    calls = []

    def poisoned(source, candidate, case, cache=None):
        if case.seed == 0 and not case.dists:  # the set-up's probes: let them pass
            return CaseResult("ok")
        calls.append(case)
        return CaseResult("fail", message="backend triton raised AcceleratorError: CUDA error: "
                          "an illegal memory access was encountered")

    monkeypatch.setattr(fuzz_module, "run_case", poisoned)
    source = (OPS / "hgrn.scan").read_text()
    summary = fuzz_module.fuzz(source, fuzz_module.Candidate(backend="chunked"), examples=20,
                               out_dir=tmp_path, shrink_seconds=30)
    assert summary.examples == 1 and summary.failures == 1 and len(calls) == 1
    assert any("sticky CUDA error" in note for note in summary.notes)
    assert summary.shrunk_case == calls[-1].to_json()
    assert summary.repro and Path(summary.repro).is_file()
