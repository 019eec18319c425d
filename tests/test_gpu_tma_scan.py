"""scripts/gpu_tma_scan.py (session 23's TMA experiment) times on a GPU only; here its kernel
runs in Triton's interpreter against a float64 loop, the script itself runs on tiny shapes
(MADC_TILES_DRY=1), and the kernel is compiled for sm_90 to check that its tiles move as bulk
tensor copies (in a fresh interpreter: `script_util.compile_in_fresh_process`)."""

import json
import os
import subprocess
import sys

import pytest
import torch
from script_util import ROOT, compile_in_fresh_process, load_script

SCRIPT = ROOT / "scripts" / "gpu_tma_scan.py"


def _reference(a, b, h0):
    h = h0.double()
    hs = []
    for t in range(a.shape[1]):
        h = a[:, t].double() * h + b[:, t].double()
        hs.append(h)
    return torch.stack(hs, 1), h


@pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") != "1", reason="needs the interpreter")
@pytest.mark.parametrize("T,BT,BC,D", [(1, 8, 16, 16), (37, 8, 16, 16), (32, 16, 8, 24),
                                       (13, 4, 16, 40)])
def test_tma_scan_matches_float64_loop(T, BT, BC, D):
    """T = 1, a prime T (its last chunk zero-filled past the end), T a multiple of the chunk,
    and channels not a multiple of the box (D = 40 in boxes of 16)."""
    gen = torch.Generator().manual_seed(T)
    a = torch.rand(2, T, D, generator=gen) * 0.5 + 0.5
    b = torch.randn(2, T, D, generator=gen)
    h0 = torch.randn(2, D, generator=gen)
    hs, ht = load_script("gpu_tma_scan").tma_scan(a, b, h0, BT, BC, 1, 2)
    want_hs, want_ht = _reference(a, b, h0)
    assert torch.allclose(hs.double(), want_hs, rtol=1e-5, atol=1e-5)
    assert torch.allclose(ht.double(), want_ht, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") != "1", reason="needs the interpreter")
def test_tma_script_runs_dry():
    env = dict(os.environ, MADC_TILES_DRY="1", PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, SCRIPT, "fp32:8,16,1,2", "bf16:16,8,1,3"], env=env,
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-4000:]
    lines = [line for line in out.stdout.splitlines() if line.startswith("tma ")]
    assert len(lines) == 2 and "FAILED" not in out.stdout, out.stdout
    errs = [float(line.rsplit(" ", 1)[1]) for line in lines]
    assert errs[0] <= 1e-5 and errs[1] <= 2e-2, out.stdout  # fp32; bf16 states rounded


def _compile(BT, BC, warps, stages, dtype):
    """The kernel compiled for sm_90: which bulk copies its PTX holds and its shared memory."""
    import re

    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    desc = f"tensordesc<{dtype}[1,{BT},{BC}]>"
    sig = {"d_a": desc, "d_b": desc, "d_h": desc, "p_h0": "*fp32", "p_ht": "*fp32",
           "T": "i32", "D": "i32", "BT": "constexpr", "BC": "constexpr", "STAGES": "constexpr"}
    src = ASTSource(fn=load_script("gpu_tma_scan").tma_scan_kernel, signature=sig,
                    constexprs={"BT": BT, "BC": BC, "STAGES": stages})
    compiled = triton.compile(src, target=GPUTarget("cuda", 90, 32),
                              options={"num_warps": warps})
    ptx = compiled.asm["ptx"]
    return {"bulk": sorted(set(re.findall(r"cp\.async\.bulk\.tensor\.3d\.[\w:.]+", ptx))),
            "shared": compiled.metadata.shared}


@pytest.mark.parametrize("BT,BC,warps,stages,dtype", [(32, 64, 2, 3, "fp32"),
                                                      (32, 128, 2, 3, "bf16")])
def test_tma_kernel_compiles_to_bulk_copies(BT, BC, warps, stages, dtype):
    got = compile_in_fresh_process(__file__, BT, BC, warps, stages, dtype)
    # loads into shared memory completing on an mbarrier, stores from shared memory
    assert any(k.startswith("cp.async.bulk.tensor.3d.shared::cluster.global") for k in got["bulk"])
    assert any(k.startswith("cp.async.bulk.tensor.3d.global.shared::cta") for k in got["bulk"])
    # STAGES buffers of both inputs' boxes at least
    size = {"fp32": 4, "bf16": 2}[dtype]
    assert got["shared"] >= stages * 2 * BT * BC * size


if __name__ == "__main__":
    print(json.dumps(_compile(*json.loads(sys.argv[1]))))
