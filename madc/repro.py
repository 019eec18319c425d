"""One fuzz case, reproducible: regenerate its inputs from a seed, run a candidate backend and
the float64 reference, compare them with the documented tolerances, and write a standalone
script that does exactly that.

`madc fuzz` (madc/fuzz.py) draws `Case`s with hypothesis and calls `run_case`; a repro script
calls the same `run_case`, so the script fails if and only if the fuzzer's check fails. This
module needs torch and madc only (no hypothesis), so a repro runs anywhere madc is installed.
The comparison rules and the tolerance table are documented in docs/fuzzing.md.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import math
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from madc.fuzz_check import (  # noqa: F401 - re-exported: the repro's vocabulary
    DTYPES,
    LOG_DOMAIN_FLOOR,
    LOWP_FACTOR,
    RANGE_FRACTION,
    TOLERANCES,
    Finding,
    compare,
    draw,
    rel_error,
    scale_floor,
)


@dataclass(frozen=True)
class Case:
    """One fuzz example. Everything a run needs is here; values come from `seed`.

    `lengths` non-empty means a packed batch: B = 1, T = sum(lengths), `cu_seqlens` from the
    lengths. `dims` and `dists` are sorted `(name, value)` pairs; an input missing from `dists`
    is drawn "normal". `initial_state` is a `STATE_DISTS` name or None (no initial state).
    """

    dtype: str = "fp32"
    batch: int = 1
    length: int = 1
    lengths: tuple = ()
    dims: tuple = ()
    dists: tuple = ()
    initial_state: str | None = None
    chunk_size: int | None = None
    seed: int = 0

    def to_json(self) -> str:
        """The case as one line of JSON (tuples become lists)."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Case:
        """Inverse of `to_json`."""
        raw = json.loads(text)
        raw["lengths"] = tuple(raw["lengths"])
        raw["dims"] = tuple(tuple(p) for p in raw["dims"])
        raw["dists"] = tuple(tuple(p) for p in raw["dists"])
        return cls(**raw)


@dataclass(frozen=True)
class Candidate:
    """What is under test: a runtime backend (`madc.load(..., backend=backend)`) or, when
    `module_path` is set, one backend module file of an emitted package (its `scan` entry
    point, docs/runtime.md), for example a hand-patched `out/gla/chunked.py`."""

    backend: str = "chunked"
    module_path: str | None = None
    device: str = "cpu"

    def label(self) -> str:
        """Short human name."""
        return f"module {self.module_path}" if self.module_path else f"backend {self.backend}"


@dataclass
class CaseResult:
    """The verdict on one case: status is "ok", "fail" or "out_of_range"."""

    status: str
    findings: list = field(default_factory=list)
    message: str = ""

    @property
    def failed(self) -> bool:
        """True when the candidate disagreed with the reference or crashed."""
        return self.status == "fail"

    def describe(self) -> str:
        """Human-readable lines: the failing quantities, or the message."""
        lines = [self.message] if self.message else []
        for f in self.findings:
            if not f.ok:
                why = f.problem or f"error {f.error:.3g} > allowed {f.allowed:.3g}"
                lines.append(f"  {f.quantity}: {why}")
        return "\n".join(lines)


class _Runner:
    """Calls a candidate as `(inputs, initial_state, cu_seqlens) -> (outputs, states)`;
    `params` are its learnable tensors by spec name."""

    def __init__(self, call, params: dict):
        self.call = call
        self.params = params


def _as_tuple(x) -> tuple:
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def module_runner(module: torch.nn.Module) -> _Runner:
    """A runner over a runtime `nn.Module` (the object `madc.load` returns)."""

    def call(inputs, initial_state, cu_seqlens):
        kwargs = dict(inputs)
        if initial_state is not None:
            kwargs["initial_state"] = (initial_state[0] if len(initial_state) == 1
                                       else tuple(initial_state))
        if cu_seqlens is not None:
            kwargs["cu_seqlens"] = cu_seqlens
        out, state = module(**kwargs, return_state=True)
        return _as_tuple(out), _as_tuple(state)

    return _Runner(call, dict(module.named_parameters()))


def import_backend_module(path: str):
    """Import one backend module file of an emitted package under a private package name
    (so a patched copy never collides with a cached or installed package of the same name)."""
    file = Path(path).resolve()
    if not file.is_file():
        raise FileNotFoundError(f"backend module {path} does not exist")
    pkg_dir = file.parent
    tag = hashlib.sha256(str(file).encode()).hexdigest()[:12]
    pkg_name = f"_madc_candidate_{pkg_dir.name}_{tag}"
    if pkg_name not in sys.modules:
        init = pkg_dir / "__init__.py"
        spec = importlib.util.spec_from_file_location(
            pkg_name, init if init.exists() else None, submodule_search_locations=[str(pkg_dir)])
        package = importlib.util.module_from_spec(spec)
        sys.modules[pkg_name] = package
        if init.exists():
            spec.loader.exec_module(package)
    return importlib.import_module(f"{pkg_name}.{file.stem}")


def path_runner(path: str, param_values: dict, dims: dict, options: dict) -> _Runner:
    """A runner over a backend module's `scan(inputs, params, dims, initial_state, cu_seqlens,
    **options)` entry point; `param_values` are copied into fresh leaf tensors."""
    backend = import_backend_module(path)
    params = {n: v.detach().clone().requires_grad_(True) for n, v in param_values.items()}

    def call(inputs, initial_state, cu_seqlens):
        outs, states = backend.scan(dict(inputs), dict(params), dict(dims), initial_state,
                                    cu_seqlens, **options)
        return _as_tuple(outs), _as_tuple(states)

    return _Runner(call, params)


def _round(t: torch.Tensor, dtype: str) -> torch.Tensor:
    return t.detach().to(DTYPES[dtype]).to(torch.float64)


def _load(source: str, backend: str, dims: dict, **options) -> torch.nn.Module:
    """Load `source` for fuzzing. The algebra gate is `madc fuzz`'s, before any case runs (a
    refuted closure needs `--allow-promotion` there), so a spec that reaches this point is
    loaded with promotion allowed; for a closed class that changes nothing."""
    import warnings

    import madc
    from madc.runtime import PromotionWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PromotionWarning)
        return madc.load(source, backend=backend, allow_promotion=True, **dims, **options)


def _set_params(runner: _Runner, values: dict, dtype: torch.dtype, device: str) -> None:
    with torch.no_grad():
        for name, p in runner.params.items():
            p.data = values[name].to(device=device, dtype=dtype)


def _forward_backward(runner: _Runner, inputs: dict, init, cu, dtype, device, case: Case,
                      finite_masks=None):
    """Run forward and backward in `dtype` on `device`; return float64 CPU copies of
    (outputs, states, grads by name). Cotangents are seeded and rounded through the dtype;
    the loss only sees positions `finite_masks` marks (default: where outputs are finite)."""
    leaves = {}
    dev_inputs = {}
    for name, x in inputs.items():
        dev_inputs[name] = x.to(device=device, dtype=dtype).requires_grad_(True)
        leaves[f"grad input {name}"] = dev_inputs[name]
    dev_init = None
    if init is not None:
        dev_init = tuple(s.to(device=device, dtype=dtype).requires_grad_(True) for s in init)
        for i, s in enumerate(dev_init):
            leaves[f"grad initial_state {i}"] = s
    for name, p in runner.params.items():
        leaves[f"grad param {name}"] = p
    outs, states = runner.call(dev_inputs, dev_init, cu.to(device) if cu is not None else None)
    values = list(outs) + list(states)
    gen = torch.Generator().manual_seed(case.seed + 1)
    if finite_masks is None:
        finite_masks = [torch.isfinite(v.detach().cpu().to(torch.float64)) for v in values]
    loss = 0.0
    for v, mask in zip(values, finite_masks):
        w = torch.randn(tuple(v.shape), generator=gen, dtype=torch.float64)
        w = (_round(w, case.dtype) * mask).to(device=device, dtype=dtype)
        loss = loss + torch.where(mask.to(device), v, torch.zeros_like(v)).mul(w).sum()
    names = list(leaves)
    grads = torch.autograd.grad(loss, [leaves[n] for n in names], allow_unused=True)
    cpu = [v.detach().cpu().to(torch.float64) for v in values]
    grads = {n: (None if g is None else g.detach().cpu().to(torch.float64))
             for n, g in zip(names, grads)}
    return cpu[:len(outs)], cpu[len(outs):], grads, finite_masks


def case_tensors(module: torch.nn.Module, case: Case):
    """The case's inputs (name -> float64 `[B, T, (H,) *shape]`), initial states (a tuple or
    None) and `cu_seqlens` (or None), regenerated from `case.seed` and the runtime API's
    `inputs`, `heads` and `state_shapes`."""
    gen = torch.Generator().manual_seed(case.seed)
    heads = (int(module.heads),) if module.heads else ()
    if case.lengths:
        batch, length, n_seq = 1, sum(case.lengths), len(case.lengths)
        offsets = [0]
        for n in case.lengths:
            offsets.append(offsets[-1] + n)
        cu = torch.tensor(offsets, dtype=torch.long)
    else:
        batch, length, n_seq, cu = case.batch, case.length, case.batch, None
    dists = dict(case.dists)
    inputs = {name: draw(dists.get(name, "normal"), (batch, length, *heads, *shape),
                         case.dtype, gen)
              for name, shape in module.inputs.items()}
    init = None
    if case.initial_state is not None:
        init = tuple(draw(case.initial_state, (n_seq, *heads, *shape), case.dtype, gen)
                     for shape in module.state_shapes.values())
    return inputs, init, cu


def _spec(source: str):
    from madc.frontend import load_spec

    return load_spec(source)


def dim_sizes(source: str, dims: dict) -> dict:
    """Every dim of the spec with `dims` overriding the defaults."""
    return _spec(source).dim_sizes(**dims)


def _cached(cache: dict, key, make):
    if key not in cache:
        cache[key] = make()
    return cache[key]


def _reference(source: str, dims: dict, cache: dict):
    """The float64 reference module on CPU and its pristine param values (init under seed 0)."""
    def make():
        with torch.random.fork_rng():
            torch.manual_seed(0)
            module = _load(source, "reference", dims).double()
        return module, {n: p.detach().clone() for n, p in module.named_parameters()}

    return _cached(cache, ("reference", tuple(sorted(dims.items()))), make)


def _out_of_range(values, dtype: str, inputs_have_inf: bool) -> str | None:
    limit = RANGE_FRACTION * torch.finfo(DTYPES[dtype]).max
    for v in values:
        if v is None:
            continue
        finite = v[torch.isfinite(v)]
        if finite.numel() and float(finite.abs().max()) > limit:
            return f"the float64 reference reaches {float(finite.abs().max()):.3g}, beyond " \
                   f"{dtype}'s range"
        if not inputs_have_inf and bool(torch.isinf(v).any()):
            return "the float64 reference overflows"
    return None


def _candidate_runner(source, candidate, case, dims, params, cache) -> _Runner:
    dtype = DTYPES[case.dtype]
    options = {} if case.chunk_size is None else {"chunk_size": case.chunk_size}
    if candidate.module_path:
        sizes = _cached(cache, ("sizes", tuple(sorted(dims.items()))),
                        lambda: dim_sizes(source, dims))
        values = {n: v.to(device=candidate.device, dtype=dtype) for n, v in params.items()}
        return path_runner(candidate.module_path, values, sizes, options)
    key = ("candidate", candidate.backend, tuple(sorted(dims.items())), case.chunk_size)
    module = _cached(cache, key, lambda: _load(source, candidate.backend, dims, **options))
    module = module.to(device=candidate.device, dtype=dtype)
    runner = module_runner(module)
    _set_params(runner, params, dtype, candidate.device)
    return runner


def _trace(exc: BaseException) -> str:
    """`Type: message` and the innermost frames, for a failure report."""
    import traceback

    frames = traceback.format_tb(exc.__traceback__)[-2:]
    return f"{type(exc).__name__}: {exc}\n" + "".join(frames).rstrip()


def run_case(source: str, candidate: Candidate, case: Case, cache: dict | None = None
             ) -> CaseResult:
    """Run `case` on the candidate (in `case.dtype` on `candidate.device`), on the reference
    in float64 and on the reference in `case.dtype` (the accuracy one may expect at that
    precision), and compare outputs, final states and gradients. `cache` (any dict) keeps
    loaded modules between calls."""
    cache = {} if cache is None else cache
    dims = dict(case.dims)
    ref64, pristine = _reference(source, dims, cache)
    params = {n: _round(v, case.dtype) for n, v in pristine.items()}
    ref = module_runner(ref64)
    _set_params(ref, params, torch.float64, "cpu")
    inputs, init, cu = case_tensors(ref64, case)
    try:
        want_o, want_s, want_g, masks = _forward_backward(ref, inputs, init, cu, torch.float64,
                                                          "cpu", case)
    except Exception as exc:  # noqa: BLE001 - the oracle itself broke: a finding too
        return CaseResult("fail", message=f"the float64 reference raised {_trace(exc)}")
    has_inf = any(bool(torch.isinf(x).any()) for x in list(inputs.values()) + list(init or ()))
    reason = _out_of_range(want_o + want_s + list(want_g.values()), case.dtype, has_inf)
    if reason:
        return CaseResult("out_of_range", message=reason)
    try:
        runner = _candidate_runner(source, candidate, case, dims, params, cache)
        got_o, got_s, got_g, _ = _forward_backward(runner, inputs, init, cu,
                                                   DTYPES[case.dtype], candidate.device,
                                                   case, masks)
    except Exception as exc:  # noqa: BLE001 - a crashing candidate is a finding, not a crash
        return CaseResult("fail", message=f"{candidate.label()} raised {_trace(exc)}")
    got, want = (got_o, got_s, got_g), (want_o, want_s, want_g)
    facts = _cached(cache, "ir", lambda: _spec(source)).semiring.facts
    selective = "idempotent_add" in facts
    log_domain = "mul_is_plus" in facts
    findings = _judge(ref64, case, got, want, None, selective, log_domain=log_domain)
    if any(not f.ok for f in findings):
        # Over the fixed tolerance or not finite: is the plain algorithm as bad at this
        # precision?
        low = _low_precision(source, case, dims, params, inputs, init, cu, masks, cache)
        # Or does the exact answer itself move that much when the values are only known to
        # the dtype's precision?
        nudged = _perturbed(ref, case, params, inputs, init, cu, masks)
        findings = _judge(ref64, case, got, want, low, selective, nudged, log_domain)
    message = ""
    if len(got_o) != len(want_o) or len(got_s) != len(want_s):
        message = (f"{candidate.label()} returned {len(got_o)} outputs and {len(got_s)} "
                   f"states, expected {len(want_o)} and {len(want_s)}")
    ok = not message and all(f.ok for f in findings)
    return CaseResult("ok" if ok else "fail", findings, message)


def _low_precision(source, case, dims, params, inputs, init, cu, masks, cache):
    """The reference run in the case's dtype on CPU, or None if it cannot run there."""
    dtype = DTYPES[case.dtype]
    try:
        module = _cached(cache, ("reference-lowp", tuple(sorted(dims.items()))),
                         lambda: _load(source, "reference", dims))
        low = module_runner(module.to(dtype))
        _set_params(low, params, dtype, "cpu")
        low_o, low_s, low_g, _ = _forward_backward(low, inputs, init, cu, dtype, "cpu", case,
                                                   masks)
        return low_o, low_s, low_g
    except Exception:  # noqa: BLE001 - no low-precision reference: fixed tolerances only
        return None


def _perturbed(ref, case: Case, params: dict, inputs: dict, init, cu, masks):
    """The float64 reference on the case's values (inputs, initial states, params) each moved
    by one unit roundoff u of the case's dtype, x * (1 +- u) with seeded signs: how far the
    exact answer moves when its data are only known to the dtype's precision (the forward
    error any algorithm computing in that dtype may show). None if it cannot run."""
    u = torch.finfo(DTYPES[case.dtype]).eps / 2
    gen = torch.Generator().manual_seed(case.seed + 1)

    def nudge(x):
        sign = torch.randint(0, 2, x.shape, generator=gen).to(torch.float64) * 2 - 1
        return x * (1 + u * sign)

    try:
        _set_params(ref, {n: nudge(v) for n, v in params.items()}, torch.float64, "cpu")
        moved_init = None if init is None else tuple(nudge(s) for s in init)
        moved = {n: nudge(x) for n, x in inputs.items()}
        out_o, out_s, out_g, _ = _forward_backward(ref, moved, moved_init, cu, torch.float64,
                                                   "cpu", case, masks)
        return out_o, out_s, out_g
    except Exception:  # noqa: BLE001 - no sensitivity estimate: the other allowances only
        return None
    finally:
        _set_params(ref, params, torch.float64, "cpu")


def _judge(ref64, case: Case, got, want, low, selective: bool = False, nudged=None,
           log_domain: bool = False) -> list:
    """Findings for every output, state and gradient (`low`: the low-precision reference's
    (outputs, states, grads) or None; `selective`: the semiring's ⊕ is max or min;
    `nudged`: the float64 reference on values moved by the dtype's roundoff, or None;
    `log_domain`: the semiring's ⊗ is +, so outputs and states are logarithms, measured
    against a scale of at least LOG_DOMAIN_FLOOR)."""
    (got_o, got_s, got_g), (want_o, want_s, want_g) = got, want
    low_o, low_s, low_g = low or ([None] * len(want_o), [None] * len(want_s), {})
    nud_o, nud_s, nud_g = nudged or ([None] * len(want_o), [None] * len(want_s), {})
    least = LOG_DOMAIN_FLOOR if log_domain else 0.0
    floors = {"output": max(scale_floor(want_o), least),
              "state": max(scale_floor(want_s), least), "grad": scale_floor(want_g.values())}
    findings = []
    names = _names(ref64, "output", len(want_o))
    for i in range(min(len(got_o), len(want_o))):
        findings.append(compare(f"output {names[i]}", "output", got_o[i], want_o[i], low_o[i],
                                case.dtype, floors["output"], nud_o[i]))
    snames = _names(ref64, "state", len(want_s))
    for i in range(min(len(got_s), len(want_s))):
        findings.append(compare(f"state {snames[i]}", "state", got_s[i], want_s[i], low_s[i],
                                case.dtype, floors["state"], nud_s[i]))
    for name, value in want_g.items():
        label = name
        if name.startswith("grad initial_state "):
            label = f"grad initial_state {snames[int(name.rsplit(' ', 1)[1])]}"
        finding = compare(label, "grad", got_g.get(name), value, low_g.get(name), case.dtype,
                          floors["grad"], nud_g.get(name))
        if selective and case.dtype != "fp32" and finding.problem is None:
            # Which argument wins a near-tie of max/min depends on the dtype's rounding and
            # moves the gradient by O(1): reported, not judged (fp32 gradients are judged).
            finding = Finding(finding.quantity, "grad", finding.error, math.inf)
        findings.append(finding)
    return findings


def _names(module, kind: str, n: int) -> list:
    declared = list(module.outputs) if kind == "output" else list(module.state_shapes)
    return declared if len(declared) == n else [str(i) for i in range(n)]


_SCRIPT = '''#!/usr/bin/env python3
"""Repro of a `madc fuzz` failure (written by madc/repro.py).

spec:      {spec_path}
candidate: {label}
case:      {case_json}

When found:
{failure}

Run `python {script_name}`: it regenerates the inputs from the case's seed, runs the candidate
and the float64 reference, and exits 1 while they still disagree (0 once they agree).
It needs madc importable (installed, or PYTHONPATH=<madc checkout>) and the environment the
fuzzer ran in (TRITON_INTERPRET=1 for a Triton candidate on a CPU).
"""

import sys
from pathlib import Path

from madc.repro import Candidate, Case, run_case

HERE = Path(__file__).resolve().parent
SPEC = {spec_literal}
CASE = Case.from_json({case_literal})
CANDIDATE = Candidate(backend={backend!r}, module_path={module_path}, device={device!r})


def main() -> int:
    result = run_case(SPEC, CANDIDATE, CASE)
    for f in result.findings:
        verdict = "ok  " if f.ok else "FAIL"
        why = f.problem or f"error {{f.error:.3g}} (allowed {{f.allowed:.3g}})"
        print(f"{{verdict}} {{f.quantity}}: {{why}}")
    if result.message:
        print(result.message)
    print(f"status: {{result.status}}")
    return 1 if result.failed else 0


if __name__ == "__main__":
    sys.exit(main())
'''


def _literal(text: str) -> str:
    """A Python literal for `text`: a readable triple-quoted string when that is exact."""
    safe = ("'''" not in text and "\\" not in text and not text.endswith("'")
            and all(ch in "\n\t" or ch.isprintable() for ch in text))
    return "'''\\\n" + text + "'''" if safe else repr(text)


def write_repro(out_dir: str | Path, source: str, candidate: Candidate, case: Case,
                result: CaseResult, spec_path: str = "<source>", name: str = "repro") -> Path:
    """Write `out_dir/<name>.py`, a standalone script that reruns `case` (see `_SCRIPT`).

    A `module_path` candidate's whole package is copied next to the script, so the repro keeps
    working after the original (say, a temporary directory) is gone. Returns the script path.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    module_path = "None"
    if candidate.module_path:
        src = Path(candidate.module_path).resolve()
        dest = out / f"{name}_candidate" / src.parent.name
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(src.parent, dest, ignore=shutil.ignore_patterns("__pycache__"))
        rel = dest.relative_to(out) / src.name
        module_path = f"str(HERE / {str(rel)!r})"
    failure = "\n".join("    " + line for line in result.describe().splitlines()) or "    -"
    script = out / f"{name}.py"
    text = _SCRIPT.format(
        spec_path=spec_path, label=candidate.label(), case_json=case.to_json(),
        failure=failure.replace('"""', "'''").replace("\\", "/"), script_name=script.name,
        spec_literal=_literal(source), case_literal=repr(case.to_json()),
        backend=candidate.backend, module_path=module_path, device=candidate.device)
    tmp = script.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(script)
    return script
