"""Every Triton kernel the zoo launches compiles for sm_90 (PTX and cubin), on a CPU machine.

The interpreter tests prove the kernels compute the right thing; this proves the real
compiler accepts them (the interpreter accepts, e.g., a non-constexpr global inside a kernel).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton")

REPO = Path(__file__).resolve().parents[1]
TOOL = REPO / "tests" / "tools" / "triton_sm90.py"
SPECS = ["ops/selective_ssm.scan", "ops/log_ssm.scan", "ops/tropical_ssm.scan",
         "ops/gla.scan", "ops/mlstm.scan", "ops/pd_ssm.scan", "ops/oscillatory_ssm.scan",
         "ops/circulant_ssm.scan", "ops/signed_perm_ssm.scan",
         "examples/scans/linear_scan.scan", "tests/specs/log_gla.scan"]


@pytest.mark.parametrize("spec", SPECS)
def test_kernels_compile_for_sm90(spec, tmp_path):
    env = os.environ | {"MADC_CACHE_DIR": str(tmp_path / "cache"), "TRITON_INTERPRET": "1"}
    jobs = tmp_path / "jobs.pkl"
    rec = subprocess.run([sys.executable, str(TOOL), "record", str(REPO / spec), str(jobs)],
                         env=env, capture_output=True, text=True, timeout=600)
    assert rec.returncode == 0, rec.stdout + rec.stderr
    env.pop("TRITON_INTERPRET")
    comp = subprocess.run([sys.executable, str(TOOL), "compile", str(jobs)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert comp.returncode == 0, comp.stdout + comp.stderr
    assert comp.stdout.count("ok ") >= 2, comp.stdout


def test_ptx_report_backward_scan_stays_in_thread(tmp_path):
    """The `ptx` mode's report, and what it guards: with the time axis inside a thread (bf16,
    16x128, 2-element vectors) the vector backward's reverse scan compiles without a single
    lane shuffle (Triton's `reverse=True` lowering costs 20 per element; docs/triton.md)."""
    env = os.environ | {"MADC_CACHE_DIR": str(tmp_path / "cache"), "TRITON_INTERPRET": "1"}
    jobs = tmp_path / "jobs.pkl"
    spec = REPO / "examples" / "scans" / "linear_scan.scan"
    rec = subprocess.run([sys.executable, str(TOOL), "record", str(spec), str(jobs)], env=env,
                         capture_output=True, text=True, timeout=600)
    assert rec.returncode == 0, rec.stdout + rec.stderr
    env.pop("TRITON_INTERPRET")
    tile = ["BT=16", "BC=128", "VEC=2", "PREFETCH=True", "num_warps=2", "C=4096"]
    bf16 = [f"{p}=@bfloat16" for p in ("p_a", "p_b", "p_hs", "p_dhs", "p_da", "p_db")]
    out = subprocess.run([sys.executable, str(TOOL), "ptx", str(jobs), "linear_scan_bwd_kernel",
                          *tile, *bf16], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert "registers" in lines[0] and "spill stores" in lines[0], out.stdout
    assert "PTX instructions: " in lines[1] and "fma" in lines[1], out.stdout
    assert "shfl" not in lines[1], out.stdout
    missing = subprocess.run([sys.executable, str(TOOL), "ptx", str(jobs), "no_such_kernel"],
                             env=env, capture_output=True, text=True, timeout=600)
    assert missing.returncode == 1 and "not among the recorded" in missing.stdout


@pytest.mark.parametrize("split", [1, 2])
def test_ptx_report_fused_ssm_keeps_a_channel_per_lane(split, tmp_path):
    """The fused selective SSM (state [D, N], held [N, D]: `_fused_for`'s swap) at the
    autotune's tiles: 4x32, 1 warp, 3 stages, one channel per lane, so the readout's sum over
    N needs no lane shuffle; and 8x16 with two lanes per channel (split 2, each lane holding
    half of N: one shuffle per row for the readout's sum, one for the softplus rows the two
    lanes exchange) and an unrolled steady loop. Both without spills, and Triton's pipeliner
    prefetches the chunk's loads with cp.async (sessions 15, 16 and 20, docs/triton.md).
    Before the swap the loop took 32 shuffles per chunk and ran softplus once per lane of N
    (4x)."""
    env = os.environ | {"MADC_CACHE_DIR": str(tmp_path / "cache"), "TRITON_INTERPRET": "1"}
    jobs = tmp_path / "jobs.pkl"
    rec = subprocess.run([sys.executable, str(TOOL), "record", str(REPO / "ops/selective_ssm.scan"),
                          str(jobs)], env=env, capture_output=True, text=True, timeout=600)
    assert rec.returncode == 0, rec.stdout + rec.stderr
    env.pop("TRITON_INTERPRET")
    bt, bc, unroll = (4, 32, 1) if split == 1 else (8, 16, 2)
    tile = ["n_D=2048", "n_N=16", f"BT={bt}", f"BC={bc}", f"VEC={bc}", "PREFETCH=0",
            "num_warps=1", "STAGES=3", f"UNROLL={unroll}", f"SPLIT={split}", "EVEN=True",
            "ROW=2048", "P_N=16", "FULL_N=True"]
    bf16 = [f"{p}=@bfloat16" for p in ("p_x", "p_dt", "p_out_y")]
    out = subprocess.run([sys.executable, str(TOOL), "ptx", str(jobs),
                          "selective_ssm_fused_fwd_kernel", *tile, *bf16], env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert "0 bytes spill stores" in lines[0], out.stdout
    counts = dict(item.rsplit(" ", 1) for item in lines[1].split(": ", 1)[1].split(", "))
    assert int(counts.get("cp", 0)) > 0, out.stdout
    # chunks in the loops: the steady loop's body (UNROLL of them), the unrolled loop's
    # remainder (one) and the tail loop (one)
    chunks = unroll + (unroll > 1) + 1
    if split == 1:
        assert "shfl" not in counts, out.stdout
    else:
        # the readout's sum over N and the softplus rows' exchange (SHARE): one shuffle each
        # per row of every chunk, and 16 outside the loops
        assert 0 < int(counts["shfl"]) <= 2 * bt * chunks + 16, out.stdout
    # ex2 per thread: per row of every chunk its lane's 16 / split state elements plus
    # softplus, once per row and channel between the split lanes (SHARE: half a softplus
    # per lane and row at split 2), and the static -exp(A_log) of its 16 / split (softplus
    # once per lane of N would add 2 x 12 per row at split 1)
    assert int(counts["ex2"]) <= chunks * bt * (16 + 1) // split + 16 // split, out.stdout
    assert int(counts["lg2"]) <= chunks * bt // split, out.stdout
    # the longest loop's SASS (here the steady loop): the last row carried to the next
    # chunk, and at split 2 the rows each lane keeps for the shared softplus, are picked by
    # masked sums whose other rows add -0.0, which fold away (`_neg_zero`; with +0.0 this
    # loop had 16 such adds)
    loop = next(line for line in lines if line.startswith("longest loop: "))
    assert loop.endswith("; adds of +0.0 0"), loop
