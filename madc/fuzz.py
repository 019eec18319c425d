"""`madc fuzz`: hypothesis-driven differential testing of a compiled spec against its float64
reference (and, with `--front-end`, of the compiler front end: madc/fuzz_frontend.py).

The pipeline: read the spec -> build a `Plan` from the IR and the runtime API (which inputs,
dims, dtypes, value distributions make sense) -> phase 1 runs `--examples` hypothesis examples
without stopping, recording every verdict -> if any failed, phase 2 replays the same seeded
search (verdicts memoised, so the replay is free) and lets hypothesis shrink the first failure
-> the shrunk case is written as a standalone repro script (madc/repro.py). What is compared,
and the tolerances, are in docs/fuzzing.md.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from madc.fuzz_check import input_dists, log_gates, state_dists
from madc.repro import DTYPES, TOLERANCES, Candidate, Case, CaseResult, run_case, write_repro

#: Sequence lengths hypothesis starts from: 1, primes, around powers of two (chunk edges).
LENGTHS = (1, 2, 3, 5, 7, 13, 16, 17, 31, 33, 61, 64, 65, 97, 127, 128, 129, 257)
#: Chunk sizes tried on the chunked backend (None: the backend's default).
CHUNK_SIZES = (None, 1, 2, 3, 4, 7, 16)
#: Smaller values tried for each dim (kept only when the spec compiles with them).
SMALL_DIMS = (1, 2, 3, 5, 8)


class FuzzFailure(Exception):
    """Raised inside the hypothesis test so hypothesis shrinks; carries the case."""

    def __init__(self, case: Case, result: CaseResult):
        super().__init__(result.describe())
        self.case = case
        self.result = result


@dataclass
class Plan:
    """What the strategies may draw for one spec and candidate."""

    dtypes: tuple
    dim_choices: tuple  # ((name, (values, default first)), ...) for dims that vary
    gates: frozenset  # inputs drawn nonpositive (log-space gates, see `log_gates`)
    inputs: tuple
    input_dists: tuple
    state_dists: tuple
    chunk_sizes: tuple
    max_length: int
    packed: bool = True  # draw cu_seqlens batches too
    notes: list = field(default_factory=list)


@dataclass
class Summary:
    """What a fuzz run found; `to_dict` is what `summary.json` holds."""

    spec: str
    candidate: str
    examples: int = 0
    failures: int = 0
    out_of_range: int = 0
    by_dtype: dict = field(default_factory=dict)
    max_error: dict = field(default_factory=dict)  # dtype -> kind -> max error seen
    first_failure: str | None = None
    shrunk_case: str | None = None
    repro: str | None = None
    notes: list = field(default_factory=list)
    seconds: float = 0.0

    def record(self, case: Case, result: CaseResult) -> None:
        """Count one phase-1 verdict."""
        self.examples += 1
        self.by_dtype[case.dtype] = self.by_dtype.get(case.dtype, 0) + 1
        if result.status == "out_of_range":
            self.out_of_range += 1
        if result.failed:
            self.failures += 1
            if self.first_failure is None:
                self.first_failure = f"{case.to_json()}\n{result.describe()}"
        errors = self.max_error.setdefault(case.dtype, {})
        for f in result.findings:
            errors[f.kind] = max(errors.get(f.kind, 0.0), f.error)

    def to_dict(self) -> dict:
        """JSON-ready form (infinite errors as the string "inf")."""
        errs = {d: {k: ("inf" if math.isinf(v) else v) for k, v in e.items()}
                for d, e in self.max_error.items()}
        return {"spec": self.spec, "candidate": self.candidate, "examples": self.examples,
                "failures": self.failures, "out_of_range": self.out_of_range,
                "by_dtype": self.by_dtype, "max_error": errs, "shrunk_case": self.shrunk_case,
                "repro": self.repro, "notes": self.notes, "seconds": round(self.seconds, 2)}

    def render(self) -> str:
        """The human summary: counts, then max error / tolerance per dtype and quantity."""
        per = ", ".join(f"{d} {n}" for d, n in sorted(self.by_dtype.items()))
        lines = [f"madc fuzz {self.spec} ({self.candidate}): {self.examples} examples "
                 f"({per}), {self.failures} failures, {self.out_of_range} out of range, "
                 f"{self.seconds:.1f}s"]
        for note in self.notes:
            lines.append(f"  note: {note}")
        if self.max_error:
            dts = [d for d in DTYPES if d in self.max_error]
            lines.append("  max error (tolerance)" + "".join(f"{d:>22}" for d in dts))
            for kind in ("output", "state", "grad"):
                cells = []
                for d in dts:
                    v = self.max_error[d].get(kind)
                    cells.append(f"{'-' if v is None else f'{v:.2e}'} ({TOLERANCES[d][kind]:.0e})")
                lines.append(f"  {kind:<20}" + "".join(f"{c:>22}" for c in cells))
            over = any(v is not None and not isinstance(v, str) and v > TOLERANCES[d][k]
                       for d in dts for k, v in self.max_error[d].items())
            if over and not self.failures:
                lines.append("  (errors over the fixed tolerance passed only where the same "
                             "dtype's reference is as far off, or the exact answer moves as "
                             "much when nudged by one roundoff: docs/fuzzing.md, rule 5)")
        if self.first_failure:
            lines.append("first failure:\n  " + self.first_failure.replace("\n", "\n  "))
        if self.shrunk_case:
            lines.append(f"shrunk to: {self.shrunk_case}")
        if self.repro:
            lines.append(f"repro: python {self.repro}")
        return "\n".join(lines)


class _DeviceLost(Exception):
    """Raised inside phase 1 when a candidate's failure left the device unusable."""


#: Failures after which the CUDA context is poisoned: every later call fails the same way, so
#: later examples, and shrinking, would only report this one bug again.
STICKY_DEVICE_ERRORS = ("illegal memory access", "illegal address", "unspecified launch failure",
                        "misaligned address", "device-side assert")


def sticky_device_error(result: CaseResult) -> bool:
    """True when `result` failed with an error that leaves the CUDA context unusable."""
    return result.failed and any(e in result.message for e in STICKY_DEVICE_ERRORS)


class _OutOfTime(Exception):
    """Raised inside phase 1 when `time_budget` is spent: stops generating."""


class FuzzSetupError(Exception):
    """The candidate cannot be fuzzed at all (backend unavailable, bad options)."""


# --------------------------------------------------------------------------- the plan


def _refused(result: CaseResult) -> bool:
    """True when the candidate raised a clean refusal (not a crash) for a probe."""
    return result.failed and any(f" raised {name}:" in result.message for name in (
        "InputError", "CompileError", "NotImplementedError", "ValueError", "TypeError"))


def build_plan(source: str, candidate: Candidate, *, dtypes: tuple, explicit_dtypes: bool,
               fixed_dims: dict, fuzz_dims: bool, max_length: int, cache: dict) -> Plan:
    """Probe the candidate: which dtypes run, which dim values compile; read inputs and the
    semiring from the IR and the runtime API. Raises CompileError for a bad spec and
    FuzzSetupError when the candidate cannot run at all."""
    from madc.frontend import load_spec
    from madc.repro import _load

    ir = load_spec(source)
    if not candidate.module_path:
        try:
            _load(source, candidate.backend, fixed_dims)
        except Exception as exc:  # noqa: BLE001 - reported as a setup error, exit 2
            raise FuzzSetupError(f"backend {candidate.backend!r} is unavailable for this spec: "
                                 f"{type(exc).__name__}: {exc}") from exc
    reference = _load(source, "reference", fixed_dims)
    notes = []
    base = tuple(sorted(fixed_dims.items()))
    kept, crashes = [], []
    for dtype in dtypes:
        probe = run_case(source, candidate, Case(dtype=dtype, length=2, dims=base), cache)
        crashed = probe.failed and " raised " in probe.message
        if crashed:
            crashes.append(f"{dtype}: {probe.message.splitlines()[0]}")
        if crashed and not explicit_dtypes:
            notes.append(f"{dtype} skipped: the candidate does not run it ({crashes[-1]})")
            continue
        kept.append(dtype)
    if len(crashes) == len(dtypes):
        raise FuzzSetupError(f"{candidate.label()} is unavailable here: it runs none of "
                             f"{', '.join(dtypes)} (first: {crashes[0]})")
    choices = []
    for name, default in (ir.dims if fuzz_dims else ()):
        if name in fixed_dims:
            continue
        values = [default]
        for v in [v for v in SMALL_DIMS if v < default][:3]:
            dims = tuple(sorted({**fixed_dims, name: v}.items()))
            try:
                probe = run_case(source, candidate, Case(length=3, dims=dims), cache)
            except Exception:  # noqa: BLE001 - the spec itself does not allow this size
                continue
            if _refused(probe):
                notes.append(f"{name}={v} skipped: {probe.message.splitlines()[0]}")
                continue
            values.append(v)
        if len(values) > 1:
            choices.append((name, tuple(values)))
    chunks = CHUNK_SIZES if candidate.backend == "chunked" and not candidate.module_path \
        else (None,)
    return Plan(dtypes=tuple(kept), dim_choices=tuple(choices), gates=log_gates(ir),
                inputs=tuple(reference.inputs), input_dists=input_dists(ir.semiring.facts),
                state_dists=state_dists(ir.semiring), chunk_sizes=chunks,
                max_length=max_length, notes=notes)


def case_strategy(plan: Plan, fixed_dims: dict):
    """The hypothesis strategy of `Case`s for `plan`. Every choice shrinks towards the
    simplest case: fp32, default dims, B=1, T=1, normal values, no initial state, seed 0."""
    from hypothesis import strategies as st

    lengths = st.one_of(st.sampled_from([t for t in LENGTHS if t <= plan.max_length]),
                        st.integers(1, plan.max_length))

    @st.composite
    def cases(draw):
        dtype = draw(st.sampled_from(plan.dtypes))
        dims = dict(fixed_dims)
        for name, values in plan.dim_choices:
            dims[name] = draw(st.sampled_from(values))
        chunk = draw(st.sampled_from(plan.chunk_sizes))
        packed = plan.packed and draw(st.booleans())
        if packed:
            seqs = draw(st.lists(st.integers(1, max(1, plan.max_length // 4)), min_size=1,
                                 max_size=4))
            batch, length = 1, sum(seqs)
        else:
            seqs = []
            batch = draw(st.integers(1, 3))
            length = draw(lengths)
        dists = []
        for name in plan.inputs:
            dist = draw(st.one_of(st.just("normal"), st.sampled_from(plan.input_dists)))
            if name in plan.gates and dist not in ("zeros", "neg_inf"):
                dist = f"nonpos:{dist}"
            if dist != "normal":
                dists.append((name, dist))
        init = draw(st.one_of(st.none(), st.sampled_from(plan.state_dists)))
        seed = draw(st.integers(0, 2**20))
        return Case(dtype=dtype, batch=batch, length=length, lengths=tuple(seqs),
                    dims=tuple(sorted(dims.items())), dists=tuple(dists), initial_state=init,
                    chunk_size=chunk, seed=seed)

    return cases()


# --------------------------------------------------------------------------- the search


class _Search:
    """The two hypothesis phases over one plan, sharing memoised verdicts."""

    def __init__(self, source: str, candidate: Candidate, strategy, examples: int, seed: int):
        from hypothesis import HealthCheck, Verbosity

        self.source, self.candidate, self.strategy, self.seed = source, candidate, strategy, seed
        self.cache: dict = {}
        self.memo: dict = {}
        self.device_lost = False
        self.settings = dict(max_examples=examples, database=None, deadline=None,
                             suppress_health_check=list(HealthCheck),
                             verbosity=Verbosity.quiet)

    def verdict(self, case: Case) -> CaseResult:
        """`run_case`, once per distinct case."""
        if case not in self.memo:
            try:
                self.memo[case] = run_case(self.source, self.candidate, case, self.cache)
            except Exception as exc:  # noqa: BLE001 - the harness itself broke: a finding
                self.memo[case] = CaseResult("fail", message=f"the reference raised "
                                             f"{type(exc).__name__}: {exc}")
        return self.memo[case]

    def explore(self, summary: Summary, deadline: float | None, progress) -> None:
        """Phase 1: every example, recorded in `summary`; stops at `deadline` (monotonic)."""
        from hypothesis import Phase, given, settings
        from hypothesis import seed as hypothesis_seed

        @hypothesis_seed(self.seed)
        @settings(phases=[Phase.generate], **self.settings)
        @given(self.strategy)
        def explore(case: Case) -> None:
            if deadline is not None and time.monotonic() > deadline:
                raise _OutOfTime
            if self.device_lost:  # hypothesis replays a failing example: keep failing alike
                raise _DeviceLost
            fresh = case not in self.memo
            result = self.verdict(case)
            if not fresh:  # hypothesis may draw a case twice: count distinct examples only
                return
            summary.record(case, result)
            if progress is not None:
                progress(summary, case, result)
            if sticky_device_error(result):
                self.device_lost = True
                raise _DeviceLost

        try:
            explore()
        except _OutOfTime:
            summary.notes.append(f"time budget spent after {summary.examples} examples")
        except _DeviceLost:
            summary.notes.append(f"stopped after {summary.examples} examples: the failure "
                                 "left the device unusable (a sticky CUDA error); the repro is "
                                 "the unshrunk case, run it in a fresh process")

    def shrink(self, first: Case, seconds: float, summary: Summary) -> Case:
        """Phase 2: replay the same seeded search (free: memoised) and let hypothesis shrink
        the first failure for at most `seconds`. Returns the smallest failing case found."""
        from hypothesis import Phase, given, settings
        from hypothesis import seed as hypothesis_seed

        stop_at = time.monotonic() + seconds

        @hypothesis_seed(self.seed)
        @settings(phases=[Phase.generate, Phase.shrink], report_multiple_bugs=False,
                  **self.settings)
        @given(self.strategy)
        def shrink(case: Case) -> None:
            # Past the budget, unseen cases count as passing: shrinking stops improving.
            if case not in self.memo and time.monotonic() > stop_at:
                return
            result = self.verdict(case)
            if result.failed:
                raise FuzzFailure(case, result)

        try:
            shrink()
        except FuzzFailure as failure:
            return failure.case
        except Exception as exc:  # noqa: BLE001 - e.g. a flaky candidate: keep it unshrunk
            summary.notes.append(f"shrinking gave up ({type(exc).__name__}); repro is unshrunk")
        return first


def fuzz(source: str, candidate: Candidate, *, examples: int = 50, seed: int = 0,
         dtypes: tuple | None = None, dims: dict | None = None, max_length: int = 300,
         out_dir: str | Path = "runs/fuzz", spec_path: str = "<source>",
         shrink_seconds: float = 60.0, packed: bool = True, time_budget: float | None = None,
         progress=None) -> Summary:
    """Fuzz `candidate` against the float64 reference of the spec `source`.

    `dims` fixes dims (they are then not fuzzed; a `module_path` candidate never fuzzes dims);
    `dtypes` restricts the dtypes (default: every dtype the candidate runs); `packed=False`
    leaves out `cu_seqlens` batches (for kernels without variable-length support);
    `time_budget` (seconds) stops generating early, with a note, when it is spent. A failure is
    shrunk for at most `shrink_seconds` and written as a repro script to `out_dir`. Returns
    the `Summary` (also written to `out_dir/summary.json`). Raises CompileError for a bad spec
    and FuzzSetupError when the candidate cannot run.
    """
    started = time.monotonic()
    fixed = dict(dims or {})
    cache: dict = {}
    plan = build_plan(source, candidate, dtypes=tuple(dtypes or DTYPES),
                      explicit_dtypes=dtypes is not None, fixed_dims=fixed,
                      fuzz_dims=not candidate.module_path, max_length=max_length, cache=cache)
    plan.packed = packed
    summary = Summary(spec=spec_path, candidate=candidate.label(), notes=list(plan.notes))
    if not packed:
        summary.notes.append("cu_seqlens batches left out (--no-cu-seqlens)")
    search = _Search(source, candidate, case_strategy(plan, fixed), examples, seed)
    search.cache = cache
    search.explore(summary, None if time_budget is None else started + time_budget, progress)
    first = next((c for c, r in search.memo.items() if r.failed), None)
    if first is not None:
        # a poisoned CUDA context fails every later call: shrinking there would mislead
        shrunk = first if search.device_lost else search.shrink(first, shrink_seconds, summary)
        summary.shrunk_case = shrunk.to_json()
        what = "module" if candidate.module_path else candidate.backend
        name = f"repro_{Path(spec_path).stem}_{what}_{seed}"
        path = write_repro(out_dir, source, candidate, shrunk, search.memo[shrunk], spec_path,
                           name)
        summary.repro = str(path)
    summary.seconds = time.monotonic() - started
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary.to_dict(), indent=2) + "\n")
    return summary


# --------------------------------------------------------------------------- the command


def add_fuzz_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `madc fuzz`'s flags to its subparser."""
    parser.add_argument("file", nargs="?", metavar="FILE", help="the .scan spec to fuzz")
    parser.add_argument("--backend", choices=["chunked", "triton"], default=None,
                        help="backend under test (default: triton on cuda, else chunked)")
    parser.add_argument("--allow-promotion", action="store_true",
                        help="fuzz a spec whose transition class is refuted for closure, "
                             "compiled as dense (as madc compile --allow-promotion)")
    parser.add_argument("--module", metavar="PATH", default=None,
                        help="fuzz this backend module of an emitted package instead "
                             "(e.g. out/gla/chunked.py; its scan() entry point)")
    parser.add_argument("--examples", type=int, default=50, metavar="N")
    parser.add_argument("--seed", type=int, default=0, metavar="S")
    parser.add_argument("--device", choices=["cpu", "cuda"], default=None,
                        help="where the candidate runs (default: cuda when available)")
    parser.add_argument("--dtype", action="append", choices=sorted(DTYPES), default=None,
                        help="restrict to this dtype (repeatable; default: all it runs)")
    parser.add_argument("--dim", action="append", default=[], metavar="NAME=VALUE",
                        help="fix a dim (repeatable); other dims are fuzzed")
    parser.add_argument("--max-length", type=int, default=300, metavar="T",
                        help="longest sequence drawn")
    parser.add_argument("--no-cu-seqlens", action="store_true",
                        help="leave out packed (cu_seqlens) batches")
    parser.add_argument("--shrink-seconds", type=float, default=60.0, metavar="S")
    parser.add_argument("--time-budget", type=float, default=None, metavar="S",
                        help="stop drawing new examples after S seconds (then shrink)")
    parser.add_argument("--out", default="runs/fuzz", metavar="DIR",
                        help="where repro scripts and summary.json go")
    parser.add_argument("--front-end", action="store_true",
                        help="fuzz the compiler front end with random and mutated specs")


def _parse_dims(items: list) -> dict:
    dims = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip().isdigit() or int(value) < 1:
            raise ValueError(f"--dim expects NAME=VALUE with a positive integer, got {item!r}")
        dims[name.strip()] = int(value)
    return dims


def main_fuzz(args: argparse.Namespace) -> int:
    """`madc fuzz`: 0 no failures, 1 a failure (repro written), 2 a usage or spec error."""
    from madc.errors import CompileError

    if args.front_end:
        from madc.fuzz_frontend import run_front_end_fuzz

        return int(run_front_end_fuzz(args.examples, args.seed, args.out))
    err = sys.stderr
    if not args.file:
        print("madc fuzz: error: FILE is required (or --front-end)", file=err)
        return 2
    if args.examples < 1 or args.max_length < 1:
        print("madc fuzz: error: --examples and --max-length must be positive", file=err)
        return 2
    try:
        source = Path(args.file).read_text()
        dims = _parse_dims(args.dim)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        print(f"madc fuzz: error: {exc}", file=err)
        return 2
    import torch

    from madc.frontend import load_spec

    try:
        # Diagnostics name the file, not "<input>"; --dim names are checked here too, and
        # a refuted algebra check refuses the spec unless --allow-promotion.
        from madc.runtime import PromotionWarning, check_algebra

        ir = load_spec(source, path=args.file)
        ir.dim_sizes(**dims)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PromotionWarning)
            check_algebra(ir, args.allow_promotion)
    except CompileError as exc:
        print(exc.render(), file=err)
        return 2
    except KeyError as exc:
        print(f"madc fuzz: error: --dim: {exc.args[0]}", file=err)
        return 2
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        print("madc fuzz: error: --device cuda but CUDA is not available", file=err)
        return 2
    backend = args.backend or ("triton" if device == "cuda" else "chunked")
    if args.module and not Path(args.module).is_file():
        print(f"madc fuzz: error: --module {args.module}: no such file", file=err)
        return 2
    candidate = Candidate(backend=backend, module_path=args.module, device=device)

    def progress(summary: Summary, case: Case, result: CaseResult) -> None:
        if result.failed and summary.failures == 1:
            print(f"  failure at example {summary.examples}; continuing, then shrinking",
                  file=err)

    try:
        summary = fuzz(source, candidate, examples=args.examples, seed=args.seed,
                       dtypes=tuple(args.dtype) if args.dtype else None, dims=dims,
                       max_length=args.max_length, out_dir=args.out, spec_path=args.file,
                       shrink_seconds=args.shrink_seconds, packed=not args.no_cu_seqlens,
                       time_budget=args.time_budget,
                       progress=progress)
    except CompileError as exc:
        print(exc.render(), file=err)
        return 2
    except (FuzzSetupError, KeyError) as exc:
        print(f"madc fuzz: error: {exc}", file=err)
        return 2
    print(summary.render())
    return 1 if summary.failures else 0
