"""scripts/gpu_gluon_lookback.py (session 18's Gluon experiment) runs on a GPU only; here its
kernel is compiled for sm_90 without one, so the script stays runnable for the next session."""

import importlib.util
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _script():
    path = os.path.join(ROOT, "scripts", "gpu_gluon_lookback.py")
    spec = importlib.util.spec_from_file_location("gpu_gluon_lookback", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("BT,NCH,VEC,NW,W", [(16, 12, 2, 1, 8), (16, 8, 2, 2, 8)])
@pytest.mark.parametrize("pipe", [False, True], ids=["one-piece", "two-pieces"])
def test_gluon_lookback_compiles_for_sm90(BT, NCH, VEC, NW, W, pipe):
    pytest.importorskip("triton.experimental.gluon")
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.experimental.gluon._runtime import GluonASTSource

    kernel = _script().b1_kernel
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
    assert "cp.async" in ptx and "atom.global" in ptx
    # the piece (two with `pipe`) in shared memory: NCH chunks of a and b
    assert compiled.metadata.shared >= (1 + pipe) * 2 * NCH * BT * VEC * 32 * NW * 2
