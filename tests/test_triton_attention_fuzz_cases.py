"""Cases `madc fuzz --backend triton` found in the attention-form backend
(madc/codegen/triton_attention.py), replayed through `madc.repro.run_case`: the fuzzer's own
check (float64 reference, docs/fuzzing.md tolerances). CPU, TRITON_INTERPRET=1.
"""

from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
from codegen_util import assert_findings_ok, replay_fuzz_case  # noqa: E402

pytestmark = pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") != "1",
                                reason="CPU tests run the kernels in the Triton interpreter")


def test_mlstm_bf16_den_near_kink():
    """mLSTM y = num / max(|den|, 1) with den = -1.0025 at one token: rounded to bf16 by the
    kernel's output it became exactly -1.0, the kink, where max() splits the gradient: the
    gradient of the normaliser's initial state was 57% off, q/k/f 15-19%. The kernel now
    returns fp32 readouts when outputs combine them and rounds the output once."""
    found = replay_fuzz_case("mlstm", {"dims": [["H", 2], ["K", 32], ["V", 32]], "dtype": "bf16",
                                "initial_state": "normal", "length": 39, "lengths": [39]})
    assert_findings_ok(found)
    assert found["grad initial_state n"].error < 0.03
    for name in ("q", "k", "f"):
        assert found[f"grad input {name}"].error < 0.03, name


def test_mlstm_bf16_log_decay_in_fp32():
    """f = 0: the decay sigmoid(0) = 0.5 is exact in bf16, but its log rounded to bf16
    (-0.6914 for -0.6931) made the state after 39 tokens 0.5^39 * exp(39 * 0.0017): 7% off.
    The log-decay is now computed from fp32 copies of the inputs."""
    found = replay_fuzz_case("mlstm", {
        "dims": [["H", 1], ["K", 3], ["V", 3]], "dtype": "bf16", "initial_state": "normal",
        "dists": [["q", "zeros"], ["k", "zeros"], ["v", "tiny"], ["i", "zeros"],
                  ["f", "zeros"]], "length": 39, "lengths": [39], "seed": 39})
    assert_findings_ok(found)
    assert found["state C"].error < 1e-2
    assert found["state n"].error < 1e-2


def test_mamba2_fp32_decay_gradient_of_strong_decays():
    """Mamba-2 with large dt: log-decays down to -56. dg was a reverse cumsum of
    q dq - k dk over the whole sequence, so a token whose decay is ~exp(-33) (exact dg
    ~1e-12) got the cumsum's rounding noise (~1e-4), and A_log's gradient sum_t dg_t g_t
    weights exactly those tokens by |g_t| ~ 33: 2.45e-4 > 2e-4 in fp32. Now dg_t =
    exp(g_t) <dS_t, S_{t-1}> from the chunk's own terms, each carrying exp(g_t)."""
    found = replay_fuzz_case("mamba2_ssd", {"dims": [["H", 2], ["N", 16], ["P", 32]],
                                     "dists": [["dt", "large"]], "dtype": "fp32",
                                     "length": 33})
    assert_findings_ok(found)
    assert found["grad param A_log"].error < 2e-5
    assert found["grad input dt"].error < 2e-5


def test_gla_fp32_strong_gates_replayed_by_gpu_replay(tmp_path, capsys):
    """The H100's shrunk gla / gated_gla fp32 failures (16-sigma log-gates, `state S` 1.1e-4),
    through `scripts/gpu_replay.py` on the CPU. The error came from fp32 cumulative
    log-decays (each row of a chunk's G rounded at ~ulp(|G|), |G| in the hundreds); with the
    fp64 sums the states are within 1e-7 (with fp32 sums the interpreter gives ~1e-6, the GPU's
    tree-shaped scan ~1e-4)."""
    from script_util import ROOT as root
    from script_util import load_script

    replay = load_script("gpu_replay")
    cases = [line for line in (root / "scripts" / "fp32_cases.jsonl").read_text().splitlines()
             if "gla.scan" in line]
    assert len(cases) == 2
    (tmp_path / "cases.jsonl").write_text("\n".join(cases) + "\n")
    assert replay.main([str(tmp_path / "cases.jsonl"), "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    states = [float(line.split()[3]) for line in lines if "state S" in line]
    assert len(states) == 2 and max(states) < 1e-7, states
