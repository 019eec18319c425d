"""Cases `madc fuzz --backend triton` found in the attention-form backend
(madc/codegen/triton_attention.py), replayed through `madc.repro.run_case`: the fuzzer's own
check (float64 reference, docs/fuzzing.md tolerances). CPU, TRITON_INTERPRET=1.
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("TRITON_INTERPRET", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from madc.repro import Candidate, Case, run_case  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") != "1",
                                reason="CPU tests run the kernels in the Triton interpreter")


def _findings(spec: str, case: dict) -> dict:
    source = (ROOT / "ops" / f"{spec}.scan").read_text()
    full = {"batch": 1, "chunk_size": None, "dists": [], "initial_state": None, "lengths": [],
            "seed": 0, **case}
    result = run_case(source, Candidate(backend="triton"), Case.from_json(json.dumps(full)))
    assert not result.message, result.message
    return {f.quantity: f for f in result.findings}


def _assert_ok(found: dict) -> None:
    bad = [f"{q}: {f.problem or f'{f.error:.3g} > {f.allowed:.3g}'}"
           for q, f in found.items() if not f.ok]
    assert not bad, bad


def test_mlstm_bf16_den_near_kink():
    """mLSTM y = num / max(|den|, 1) with den = -1.0025 at one token: rounded to bf16 by the
    kernel's output it became exactly -1.0, the kink, where max() splits the gradient: the
    gradient of the normaliser's initial state was 57% off, q/k/f 15-19%. The kernel now
    returns fp32 readouts when outputs combine them and rounds the output once."""
    found = _findings("mlstm", {"dims": [["H", 2], ["K", 32], ["V", 32]], "dtype": "bf16",
                                "initial_state": "normal", "length": 39, "lengths": [39]})
    _assert_ok(found)
    assert found["grad initial_state n"].error < 0.03
    for name in ("q", "k", "f"):
        assert found[f"grad input {name}"].error < 0.03, name


def test_mlstm_bf16_log_decay_in_fp32():
    """f = 0: the decay sigmoid(0) = 0.5 is exact in bf16, but its log rounded to bf16
    (-0.6914 for -0.6931) made the state after 39 tokens 0.5^39 * exp(39 * 0.0017): 7% off.
    The log-decay is now computed from fp32 copies of the inputs."""
    found = _findings("mlstm", {
        "dims": [["H", 1], ["K", 3], ["V", 3]], "dtype": "bf16", "initial_state": "normal",
        "dists": [["q", "zeros"], ["k", "zeros"], ["v", "tiny"], ["i", "zeros"],
                  ["f", "zeros"]], "length": 39, "lengths": [39], "seed": 39})
    _assert_ok(found)
    assert found["state C"].error < 1e-2
    assert found["state n"].error < 1e-2


def test_mamba2_fp32_decay_gradient_of_strong_decays():
    """Mamba-2 with large dt: log-decays down to -56. dg was a reverse cumsum of
    q dq - k dk over the whole sequence, so a token whose decay is ~exp(-33) (exact dg
    ~1e-12) got the cumsum's rounding noise (~1e-4), and A_log's gradient sum_t dg_t g_t
    weights exactly those tokens by |g_t| ~ 33: 2.45e-4 > 2e-4 in fp32. Now dg_t =
    exp(g_t) <dS_t, S_{t-1}> from the chunk's own terms, each carrying exp(g_t)."""
    found = _findings("mamba2_ssd", {"dims": [["H", 2], ["N", 16], ["P", 32]],
                                     "dists": [["dt", "large"]], "dtype": "fp32",
                                     "length": 33})
    _assert_ok(found)
    assert found["grad param A_log"].error < 2e-5
    assert found["grad input dt"].error < 2e-5
