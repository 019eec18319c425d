"""scripts/gpu_gluon_lookback.py (session 18's Gluon experiment) runs on a GPU only; here its
kernel is compiled for sm_90 without one, so the script stays runnable for the next session.
The compile runs in a fresh interpreter (`script_util.compile_in_fresh_process` says why)."""

import json
import sys

import pytest
from script_util import compile_in_fresh_process, load_script


def _compile(BT, NCH, VEC, NW, W, pipe):
    """Compile the kernel for sm_90 and return what the test checks (its PTX's instructions
    and its shared memory)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.experimental.gluon._runtime import GluonASTSource

    kernel = load_script("gpu_gluon_lookback").b1_kernel
    sig = {k: "*fp32" for k in ("p_h0", "p_ht", "p_agg_a", "p_agg_b", "p_inc")}
    sig |= {"p_a": "*bf16", "p_b": "*bf16", "p_hs": "*bf16", "p_ticket": "*i32", "C": "i32",
            "T": "i32", "NP": "i32"}
    tpc = min(32, VEC * 32 * NW // 8)
    meta = dict(BT=BT, NCH=NCH, VEC=VEC, NW=NW, W=W, CPV=8, TPC=tpc, TPR=32 // tpc, PIPE=pipe)
    names = list(kernel.arg_names)
    # as a launch specialises them: pointers and the channel count 16-byte aligned
    attrs = {(names.index(k),): [["tt.divisibility", 16]] for k in sig if k not in ("T", "NP")}
    compiled = triton.compile(
        GluonASTSource(fn=kernel, signature=sig | {k: "constexpr" for k in meta},
                       constexprs=meta, attrs=attrs),
        target=GPUTarget("cuda", 90, 32), options={"num_warps": NW})
    ptx = compiled.asm["ptx"]
    return {"cp.async": "cp.async" in ptx, "atom.global": "atom.global" in ptx,
            "shared": compiled.metadata.shared}


@pytest.mark.parametrize("BT,NCH,VEC,NW,W", [(16, 12, 2, 1, 8), (16, 8, 2, 2, 8)])
@pytest.mark.parametrize("pipe", [False, True], ids=["one-piece", "two-pieces"])
def test_gluon_lookback_compiles_for_sm90(BT, NCH, VEC, NW, W, pipe):
    pytest.importorskip("triton.experimental.gluon")
    got = compile_in_fresh_process(__file__, BT, NCH, VEC, NW, W, pipe)
    assert got["cp.async"] and got["atom.global"]
    # the piece (two with `pipe`) in shared memory: NCH chunks of a and b
    assert got["shared"] >= (1 + pipe) * 2 * NCH * BT * VEC * 32 * NW * 2


if __name__ == "__main__":
    print(json.dumps(_compile(*json.loads(sys.argv[1]))))
