"""Helpers shared by the code-generation tests: load a zoo spec at tiny dims, make inputs that
keep long recurrences bounded, compare tensors by relative error."""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import torch

import madc.runtime as rt

# Compile into a throwaway cache unless the caller chose one (keeps ~/.cache/madc clean).
os.environ.setdefault("MADC_CACHE_DIR", tempfile.mkdtemp(prefix="madc-test-cache-"))

REPO = Path(__file__).resolve().parents[1]
ZOO = sorted(p.stem for p in (REPO / "ops").glob("*.scan"))
#: Specs whose transition class is refuted for closure: they load only with promotion.
PROMOTED = {"monarch_ssm", "cd_ssm", "deltanet"}


def tiny_dims(name: str, size: int = 3) -> dict:
    """Every dim at `size` (monarch's b stays 2: its state holds b*b entries), heads at 2."""
    module = load_zoo(name)
    dims = {}
    for dim in module.dims:
        dims[dim] = 2 if dim == "H" or name == "monarch_ssm" else size
    return dims


def load_zoo(name: str, backend: str = "reference", **dims):
    """`madc.load` of ops/<name>.scan (promotion allowed for the refuted ones), float64."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rt.PromotionWarning)
        module = rt.load(str(REPO / "ops" / f"{name}.scan"), backend=backend,
                         allow_promotion=name in PROMOTED, **dims)
    return module.double()


def make_inputs(module, batch: int, length: int, seed: int = 0, grad: bool = False) -> dict:
    """Random float64 inputs [B, T, (H,) *shape]. Log-space gates (`g`) are made negative so
    decays stay below one over long sequences; everything else is N(0, 1/2)."""
    gen = torch.Generator().manual_seed(seed)
    head = (module.heads,) if module.heads else ()
    out = {}
    for name, shape in module.inputs.items():
        x = torch.randn(batch, length, *head, *shape, generator=gen, dtype=torch.float64)
        x = -torch.nn.functional.softplus(x) - 0.05 if name == "g" else 0.5 * x
        out[name] = x.requires_grad_(grad)
    return out


def make_state(module, rows: int, seed: int = 1, grad: bool = False):
    """A random initial state (tensor, or tuple for several states)."""
    gen = torch.Generator().manual_seed(seed)
    head = (module.heads,) if module.heads else ()
    states = tuple(torch.randn(rows, *head, *shape, generator=gen, dtype=torch.float64)
                   .requires_grad_(grad) for shape in module.state_shapes.values())
    return states[0] if len(states) == 1 else states


def as_tuple(x) -> tuple:
    """A tensor as a 1-tuple; a tuple unchanged."""
    return x if isinstance(x, tuple) else (x,)


def rel_err(got, want) -> float:
    """max |got - want| / max |want| over tensors (or tuples of tensors)."""
    worst = 0.0
    for g, w in zip(as_tuple(got), as_tuple(want), strict=True):
        assert g.shape == w.shape, (g.shape, w.shape)
        assert torch.isfinite(w).all(), "the reference produced non-finite values"
        scale = w.detach().abs().max().clamp_min(1e-300)
        worst = max(worst, float((g - w).detach().abs().max() / scale))
    return worst


def replay_fuzz_case(spec: str, case: dict, device: str = "cpu") -> dict:
    """Replay a `madc fuzz` case (its JSON fields; unspecified ones take the Case defaults)
    on ops/<spec>.scan with the Triton backend on `device` through `madc.repro.run_case`, the
    fuzzer's own check: quantity name -> Finding. Asserts the run itself raised nothing."""
    import json

    from madc.repro import Candidate, Case, run_case

    source = (REPO / "ops" / f"{spec}.scan").read_text()
    full = {"batch": 1, "chunk_size": None, "dists": [], "initial_state": None, "lengths": [],
            "seed": 0, **case}
    result = run_case(source, Candidate(backend="triton", device=device),
                      Case.from_json(json.dumps(full)))
    assert not result.message, result.message
    return {f.quantity: f for f in result.findings}


def assert_findings_ok(found: dict) -> None:
    """Every finding of `replay_fuzz_case` within its allowance."""
    bad = [f"{q}: {f.problem or f'{f.error:.3g} > {f.allowed:.3g}'}"
           for q, f in found.items() if not f.ok]
    assert not bad, bad
