"""Cases `madc fuzz --backend triton` found in the vector-state backend
(madc/codegen/triton_vector.py), replayed through `madc.repro.run_case`: the fuzzer's own
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


def test_log_ssm_bf16_large_states_saved_in_fp32():
    """log_ssm in bf16 with 16-sigma x and g: states near 50, where one bf16 step is 0.25, so
    the backward's exp(a + p - h) read from bf16 states was up to 12% off (g gradient 0.145
    against 0.1). States are now saved in fp32 when the derived adjoint reads them through a
    nonlinear function."""
    source = (ROOT / "ops" / "log_ssm.scan").read_text()
    case = {"batch": 1, "chunk_size": None, "dims": [["D", 32]],
            "dists": [["x", "large"], ["g", "large"]], "dtype": "bf16", "initial_state": None,
            "length": 107, "lengths": [1, 38, 9, 59], "seed": 1048576}
    result = run_case(source, Candidate(backend="triton"), Case.from_json(json.dumps(case)))
    assert not result.message, result.message
    found = {f.quantity: f for f in result.findings}
    assert all(f.ok for f in found.values()), found
    assert found["grad input g"].error < 0.03
    assert found["grad input x"].error < 0.03
