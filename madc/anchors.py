"""Hand-written diagonal-scan kernels that `madc bench` compares against, when importable.

madc never imports these outside the benchmark. Each anchor computes the real diagonal scan
`h_t = a_t * h_{t-1} + b_t` on its own layout; `diagonal_anchors` returns callables that take
the bench's `a, b: [B, T, D]` tensors (already converted once to the anchor's layout outside
the timed region) so the times compare kernels, not layout copies.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable


def _accelerated_scan() -> Callable | None:
    # the Triton kernel lives in `accelerated_scan.scalar` (0.3.x), `.triton` in older releases
    for module in ("accelerated_scan.scalar", "accelerated_scan.triton"):
        try:
            return importlib.import_module(module).scan
        except Exception:  # noqa: BLE001 - any import failure means "not available"
            continue
    return None


def _fla_hgrn() -> tuple | None:
    try:
        from fla.ops.hgrn import chunk_hgrn, fused_recurrent_hgrn
    except Exception:  # noqa: BLE001
        return None
    return chunk_hgrn, fused_recurrent_hgrn


def available() -> dict:
    """Anchor name -> True/False, without running anything."""
    return {"accelerated-scan": _accelerated_scan() is not None,
            "fla-hgrn": _fla_hgrn() is not None}


def diagonal_anchors(a, b) -> dict:
    """name -> (fn, args) for every importable anchor; `fn(*args)` returns the states.

    `a`, `b` are `[B, T, D]` CUDA tensors: accelerated-scan takes contiguous `[B, D, T]`,
    fla's hgrn takes `x = b` and the log-gate `g = log(a)` as `[B, T, D]`.
    """
    out = {}
    if not a.is_cuda:
        return out
    scan = _accelerated_scan()
    if scan is not None:
        gates = a.transpose(1, 2).contiguous()
        tokens = b.transpose(1, 2).contiguous()
        out["accelerated-scan"] = (scan, (gates, tokens))
    fla = _fla_hgrn()
    if fla is not None:
        chunk_hgrn, fused_recurrent_hgrn = fla
        g = a.float().clamp_min(1e-6).log().to(a.dtype).contiguous()
        x = b.contiguous()
        out["fla chunk_hgrn"] = (lambda x, g: chunk_hgrn(x, g)[0], (x, g))
        out["fla fused_recurrent_hgrn"] = (lambda x, g: fused_recurrent_hgrn(x, g)[0], (x, g))
    return out
