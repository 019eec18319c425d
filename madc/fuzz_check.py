"""The fuzzer's judgement: value distributions (chosen by semiring facts and log-space gates),
tolerances by dtype, and the rule that compares one candidate quantity with the float64
reference (docs/fuzzing.md documents both).

Shared by `madc fuzz` (madc/fuzz.py) and the repro scripts (madc/repro.py); torch only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

#: Largest accepted error, relative to the float64 reference's largest magnitude, by dtype and
#: quantity kind. See docs/fuzzing.md for how they were chosen.
TOLERANCES = {
    "fp32": {"output": 1e-4, "state": 1e-4, "grad": 2e-4},
    "fp16": {"output": 1e-2, "state": 1e-2, "grad": 2e-2},
    "bf16": {"output": 5e-2, "state": 5e-2, "grad": 1e-1},
}
#: A candidate may also be up to this many times less accurate than the sequential reference
#: run in the same dtype (some inputs are ill-conditioned in any algorithm at that precision,
#: and a chunked form reassociates sums and products over a whole chunk: 5x was seen on a
#: cancelling bf16 state of pd_ssm), or than the float64 reference moves when its data are
#: nudged by the dtype's unit roundoff (`compare`'s `nudged`; docs/fuzzing.md).
LOWP_FACTOR = 8.0
#: Errors are measured against at least this fraction of the largest value of the same kind
#: (output, state, gradient) in the example. A gradient that is exactly 0 in float64 (mamba2's
#: A_log at T=1) comes out of a cancelling backward formula as rounding noise: 0.003 next to
#: gradients of 380 in fp32, i.e. 8e-6 of the scale of the computation.
FLOOR_FRACTION = 0.1
#: Outputs and states of a semiring whose product is + (log, tropical, min-plus) are
#: logarithms: an error of d in one is a relative error of d in the value it stands for. They
#: are measured against a scale of at least 1, so a log-domain value near 0 is not held to
#: relative accuracy: h = A + (x - A), with A a cumulated log-coefficient (the log semiring's
#: chunk lowering), is off by ~eps |A| (an H100 run: 2e-8 on x ~ 1e-4, log_ssm fp32, T = 1).
LOG_DOMAIN_FLOOR = 1.0
#: Values the float64 reference produces above this fraction of the dtype's largest finite value
#: make the example out of the dtype's range: it is counted and skipped, not compared.
RANGE_FRACTION = 1.0 / 64.0
#: Scales of the "large" and "tiny" value distributions by dtype.
LARGE = {"fp32": 16.0, "bf16": 16.0, "fp16": 4.0}
TINY = {"fp32": 1e-4, "bf16": 1e-4, "fp16": 1e-2}
#: Value distributions for per-token inputs; "ties", "neg_inf", "pos_inf" only where the
#: semiring makes them meaningful (see madc/fuzz.py). "nonpos:<dist>" is -|<dist>|.
INPUT_DISTS = ("normal", "zeros", "large", "tiny", "ties", "neg_inf", "pos_inf")
#: Value distributions for initial states (the semiring domain's own values).
STATE_DISTS = ("normal", "nonneg", "unit", "boolean", "positive", "neg_inf", "pos_inf", "ties")


@dataclass(frozen=True)
class Finding:
    """One compared quantity: `kind` is output/state/grad; `error` the max abs difference over
    positions where the reference is finite, divided by the reference's max magnitude;
    `allowed` the tolerance it was held to; `problem` a reason when it failed otherwise."""

    quantity: str
    kind: str
    error: float
    allowed: float
    problem: str | None = None

    @property
    def ok(self) -> bool:
        """True when the quantity passed."""
        return self.problem is None and self.error <= self.allowed


def draw(dist: str, shape: tuple, dtype: str, gen: torch.Generator) -> torch.Tensor:
    """Values of distribution `dist` (an INPUT_DISTS or STATE_DISTS name), float64, already
    rounded through `dtype` so candidate and reference see the same numbers."""
    f64 = torch.float64
    if dist.startswith("nonpos:"):
        # A log-space gate: nonpositive values keep the recurrence from expanding.
        return -draw(dist[len("nonpos:"):], shape, dtype, gen).abs()
    normal = torch.randn(shape, generator=gen, dtype=f64)
    if dist == "normal":
        x = normal
    elif dist == "zeros":
        x = torch.zeros(shape, dtype=f64)
    elif dist == "large":
        x = normal * LARGE[dtype]
    elif dist == "tiny":
        x = normal * TINY[dtype]
    elif dist == "ties":
        # Few distinct values, so max/min see exact ties.
        x = torch.randint(-2, 3, shape, generator=gen).to(f64) / 2
    elif dist in ("neg_inf", "pos_inf"):
        mask = torch.rand(shape, generator=gen, dtype=f64) < 0.3
        x = normal.masked_fill(mask, -math.inf if dist == "neg_inf" else math.inf)
    elif dist == "nonneg":
        x = normal.abs()
    elif dist == "positive":
        x = normal.abs() + 0.1
    elif dist == "unit":
        x = torch.rand(shape, generator=gen, dtype=f64)
    elif dist == "boolean":
        x = torch.randint(0, 2, shape, generator=gen).to(f64)
    else:
        raise ValueError(f"unknown value distribution {dist!r}")
    return x.to(DTYPES[dtype]).to(f64)


def scale_floor(values) -> float:
    """FLOOR_FRACTION of the largest finite magnitude among `values` (tensors or None): the
    smallest scale a quantity's error is measured against, so a quantity whose exact value is
    ~0 (a gradient that cancels) is not held to relative accuracy on rounding noise."""
    top = 0.0
    for v in values:
        if v is not None and v.numel():
            finite = v[torch.isfinite(v)]
            if finite.numel():
                top = max(top, float(finite.abs().max()))
    return FLOOR_FRACTION * top


def rel_error(got: torch.Tensor, want: torch.Tensor, floor: float = 0.0) -> float:
    """Max |got - want| over positions where `want` is finite, divided by max |want| there,
    or by `floor` when that is larger (1e-30 at least). NaN/inf in `got` there give inf."""
    mask = torch.isfinite(want)
    if not bool(mask.any()):
        return 0.0
    diff = (got[mask] - want[mask]).abs()
    if not bool(torch.isfinite(diff).all()):
        return math.inf
    return float(diff.max()) / max(float(want[mask].abs().max()), floor, 1e-30)


def compare(quantity: str, kind: str, got, want, lowp, dtype: str, floor: float = 0.0,
            nudged=None) -> Finding:
    """Judge one quantity (see docs/fuzzing.md): shapes equal; where the float64 reference is
    +-inf the candidate has the same value; where it is finite the candidate is finite (or, if
    the reference is beyond the dtype's range, the same-signed inf; or where the sequential
    reference run in the dtype, `lowp`, is not finite either) and within tolerance; where
    the reference is NaN nothing is required. `floor` is the smallest scale errors are
    measured against (see `scale_floor`). `nudged` is the float64 reference on values moved
    by the dtype's unit roundoff: the candidate may also be LOWP_FACTOR times as far off as
    that (the problem's own sensitivity at this precision)."""
    tol = TOLERANCES[dtype][kind]
    if want is None:
        if got is not None and bool((got != 0).any()):
            return Finding(quantity, kind, math.inf, tol, "gradient where the reference has none")
        return Finding(quantity, kind, 0.0, tol)
    if got is None:
        if bool((want != 0).any()):
            return Finding(quantity, kind, math.inf, tol, "no gradient; the reference has one")
        return Finding(quantity, kind, 0.0, tol)
    if tuple(got.shape) != tuple(want.shape):
        return Finding(quantity, kind, math.inf, tol,
                       f"shape {tuple(got.shape)}, expected {tuple(want.shape)}")
    inf = torch.isinf(want)
    if bool((got[inf] != want[inf]).any()):
        n = int((got[inf] != want[inf]).sum())
        return Finding(quantity, kind, math.inf, tol, f"{n} positions where the reference is "
                       "+-inf differ (inf positions must match)")
    finite = torch.isfinite(want)
    bad = finite & ~torch.isfinite(got)
    big = want.abs() > torch.finfo(DTYPES[dtype]).max
    bad &= ~(big & torch.isinf(got) & (torch.sign(got) == torch.sign(want)))
    lowp_ok = lowp is not None and tuple(lowp.shape) == tuple(want.shape)
    if lowp_ok:
        # The spec itself cannot be computed in this dtype there: not the candidate's fault.
        excused = bad & ~torch.isfinite(lowp)
        bad &= ~excused
        big |= excused
    if bool(bad.any()):
        n_nan = int((bad & torch.isnan(got)).sum())
        return Finding(quantity, kind, math.inf, tol,
                       f"{n_nan} NaN and {int(bad.sum()) - n_nan} inf where the reference is "
                       "finite")
    keep = finite & ~big
    err = rel_error(got.masked_fill(~keep, 0), want.masked_fill(~keep, 0), floor)
    allowed = tol
    # LOWP_FACTOR times as far off as the same dtype's reference, or as the exact answer moves
    for other in (lowp if lowp_ok else None, nudged):
        if other is not None and tuple(other.shape) == tuple(want.shape):
            both = keep & torch.isfinite(other)
            off = rel_error(other.masked_fill(~both, 0), want.masked_fill(~both, 0), floor)
            allowed = max(allowed, LOWP_FACTOR * off)
    return Finding(quantity, kind, err, allowed)


def input_dists(facts: frozenset) -> tuple:
    """Value distributions for per-token inputs, chosen by the semiring's derived facts:
    exact ties where ⊕ is max/min, the ⊕ identity (-inf or +inf) where it is one."""
    dists = ["zeros", "large", "tiny"]
    if "idempotent_add" in facts:
        dists.append("ties")
    if facts & {"add_is_max", "add_is_logaddexp"}:
        dists.append("neg_inf")
    if "add_is_min" in facts:
        dists.append("pos_inf")
    return tuple(dists)


def state_dists(semiring) -> tuple:
    """Value distributions for initial states: values of the semiring's domain, and its zero
    (an infinity) where the domain has one."""
    by_domain = {"nonneg": ("nonneg",), "positive": ("positive",), "unit_interval": ("unit",),
                 "boolean": ("boolean",)}
    if semiring.domain in by_domain:
        return by_domain[semiring.domain]
    dists = ["normal"]
    if "idempotent_add" in semiring.facts:
        dists.append("ties")
    if semiring.facts & {"add_is_max", "add_is_logaddexp"}:
        dists.append("neg_inf")
    if "add_is_min" in semiring.facts:
        dists.append("pos_inf")
    return tuple(dists)


def _children(expr) -> list:
    kids = list(getattr(expr, "args", ()) or ()) + [getattr(expr, "x", None),
                                                    getattr(expr, "y", None)]
    return [k for k in kids if k is not None and not isinstance(k, (int, float, str))]


def _affine_inputs(expr, lets: dict, out: set) -> None:
    """Collect the inputs `expr` depends on without passing through a real function call."""
    from madc import ir

    if isinstance(expr, ir.Ref):
        if expr.kind == "input":
            out.add(expr.name)
        elif expr.kind == "let" and expr.name in lets:
            _affine_inputs(lets[expr.name], lets, out)
    elif not isinstance(expr, ir.Call):
        for child in _children(expr):
            _affine_inputs(child, lets, out)


def log_gates(scan_ir) -> frozenset:
    """Inputs that reach a transition coefficient as `exp(<affine in the input>)`: log-space
    forget gates (flash-linear-attention's `g`). Positive values there make the recurrence
    expand beyond every dtype's range, so the fuzzer draws them nonpositive."""
    from madc import ir

    lets = {let.name: let.expr for let in scan_ir.lets}
    found: set = set()

    def visit(expr) -> None:
        if isinstance(expr, ir.Ref) and expr.kind == "let" and expr.name in lets:
            visit(lets[expr.name])
        elif isinstance(expr, ir.Call) and expr.fn == "exp":
            _affine_inputs(expr.args[0], lets, found)
        else:
            for child in _children(expr):
                visit(child)

    for update in scan_ir.updates:
        tr = update.transition
        if tr.coeff is not None:
            visit(tr.coeff)
        for factor in tr.factors:
            for arg in factor.args:
                visit(arg)
    return frozenset(found)
