"""`madc fuzz --front-end`: random and mutated specs must end in a ScanIR or a CompileError.

Four input sources, interleaved, all seeded:

* grammar-aware generation (`generate_spec`): statements built from the language's own
  vocabulary, mostly well-formed, so sema, the update normaliser and the checker are reached;
* token-level mutation of the zoo specs (delete, duplicate, swap, replace by a token from a
  pool of keywords, operators, hostile names, huge numbers and Unicode look-alikes);
* line-level mutation of the zoo specs (statements deleted, duplicated, moved, spliced);
* byte-level mutation of the zoo specs (flips, inserts, deletes, invalid UTF-8, NUL, huge
  repeats), loaded from a file so the reader's decoding is exercised too.

An accepted spec is then given to the algebra checker (`madc.algebra.check_ir`, when present).
Any exception other than `CompileError` is a failure; its input and traceback are saved under
`out_dir` as `failure_NNNN.scan` / `failure_NNNN.txt`.
"""

from __future__ import annotations

import importlib.resources
import random
import re
import signal
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from madc.errors import CompileError

#: Seconds one algebra check may take before it is abandoned (not a failure: sympy can be slow
#: on a strange user semiring, and the checker's own time limits are its business).
ALGEBRA_SECONDS = 5.0

_TOKEN = re.compile(r"\s+|#[^\n]*|[A-Za-z_]\w*|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\*\*|.", re.S)
_POOL = [
    "scan", "dims", "heads", "semiring", "over", "input", "param", "init", "let", "state",
    "readout", "output", "=", ":", ",", "[", "]", "(", ")", "{", "}", "+", "-", "*", "/", "@",
    "**", "⊕", "⊗", "\n", "None", "inf", "identity", "outer", "sum", "exp", "axis", "diag",
    "perm", "onehot", "circulant", "block_diag", "monarch", "dense", "hardmax", "stack",
    "__import__", "lambda", "class", "torch", "self", "ｘ", "é", "'", '"', "\\", "1e999",
    "99999999999999999999", "0", "-1", "2", "0.5", "H", "D", "N", "K", "V", "h", "S", "x",
    "real", "log", "tropical", "nonneg", "max", "min", "[:, None]", "$", "\x00", "\t",
]
_ZOO_FALLBACK = Path(__file__).resolve().parent.parent / "ops"


@dataclass
class FuzzReport:
    """What a front-end fuzz run did. `int(report)` is the exit status: 0 clean, 1 failures."""

    examples: int = 0
    accepted: int = 0
    refused: int = 0
    algebra_checked: int = 0
    algebra_skipped: int = 0
    failures: list = field(default_factory=list)  # list[Path]: saved inputs
    seconds: float = 0.0

    def __int__(self) -> int:
        return 1 if self.failures else 0

    def summary(self) -> str:
        """One paragraph for the terminal."""
        lines = [f"front-end fuzz: {self.examples} inputs in {self.seconds:.1f}s: "
                 f"{self.accepted} accepted, {self.refused} refused with diagnostics, "
                 f"{len(self.failures)} internal errors; algebra checked "
                 f"{self.algebra_checked} (skipped {self.algebra_skipped} slow)"]
        lines += [f"  failure saved: {p}" for p in self.failures[:20]]
        return "\n".join(lines)


def zoo_sources() -> list[str]:
    """The operator zoo's sources (installed package data, or the repository's `ops/`)."""
    try:
        root = importlib.resources.files("madc.zoo")
        files = [f for f in root.iterdir() if f.name.endswith(".scan")]
    except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError, OSError):
        files = list(_ZOO_FALLBACK.glob("*.scan"))
    return [f.read_text("utf-8") for f in sorted(files, key=lambda f: f.name)]


# --------------------------------------------------------------------------- generation

_FUNCS = ["exp", "log", "sigmoid", "softplus", "tanh", "abs", "sqrt", "relu", "silu", "cos"]
_CONSTRUCTORS = ["diag({v})", "perm({m})", "onehot({m})", "signed_perm({m}, {v})",
                 "circulant({v})", "dense({m})", "identity - outer({v}, {v})"]
_SEMIRINGS = ["real", "log", "tropical", "min_plus", "max_times over nonneg", "boolean",
              "max_times over reals", "nope"]
_USER_OPS = ["max(x, y)", "min(x, y)", "x + y", "x * y", "log(exp(x) + exp(y))", "x", "x - y",
             "max(x, y) + 1", "x / y"]


def _expr(rng: random.Random, names: list[str], depth: int = 0) -> str:
    """A random expression over `names` (real or semiring: sema decides)."""
    r = rng.random()
    if depth > 3 or r < 0.3:
        if rng.random() < 0.15:
            return rng.choice(["1", "0.5", "2", "-1", "K ** -0.5", "inf"])
        return rng.choice(names)
    if r < 0.5:
        op = rng.choice([" + ", " * ", " - ", " @ ", " / ", " ⊕ ", " ⊗ "])
        return _expr(rng, names, depth + 1) + op + _expr(rng, names, depth + 1)
    if r < 0.65:
        return f"{rng.choice(_FUNCS)}({_expr(rng, names, depth + 1)})"
    if r < 0.75:
        fn = rng.choice(["sum", "amax", "hardmax", "logsumexp"])
        return f"{fn}({_expr(rng, names, depth + 1)}, axis={rng.choice([0, 1, -1, 2])})"
    if r < 0.85:
        item = rng.choice(["[:, None]", "[None, :]", "[0]", "[:, 0]", "[None]"])
        return f"{rng.choice(names)}{item}"
    if r < 0.92:
        return f"outer({rng.choice(names)}, {rng.choice(names)})"
    return f"({_expr(rng, names, depth + 1)})"


def _shape(rng: random.Random, dims: list[str]) -> str:
    n = rng.choice([0, 1, 1, 2, 2, 3])
    return "[" + ", ".join(rng.choice(dims + ["2", "1"]) for _ in range(n)) + "]"


def _coherent_spec(rng: random.Random) -> str:
    """A random spec whose shapes agree, so it usually reaches the IR and the checker."""
    n = rng.choice(["D", "N"])
    matrix = rng.random() < 0.4
    state = f"[{n}, V]" if matrix else f"[{n}]"
    lines = [f"scan ok{rng.randint(0, 99)}", f"dims {n} = {rng.choice([1, 2, 4, 8])}, V = 4",
             f"semiring {rng.choice(_SEMIRINGS[:6])}", f"input a : [{n}]", f"input b : [{n}]",
             "input v : [V]", f"let g = {rng.choice(_FUNCS)}(a)",
             f"let m = b[:, None] * {rng.choice(['a', 'g'])}[None, :]", f"state h : {state}"]
    tail = "outer(b, v)" if matrix else rng.choice(["b", "g * b", "a ⊕ b"])
    coeff = "g[:, None]" if matrix else rng.choice(["g", "a ⊗ g"])
    ctor = rng.choice(["diag(g)", "circulant(g)", "dense(m)", "onehot(hardmax(m, axis=0))",
                       "perm(m) @ diag(a)", "(identity - outer(a, b))", "diag(a) @ circulant(g)"])
    update = rng.choice([f"h = {coeff} * h + {tail}", f"h = {ctor} @ h + {tail}", "h = h + "
                         + tail])
    readout = "b @ h" if matrix else rng.choice(["h", "sum(h * b, axis=0)", "g * h"])
    lines += [update, f"readout r = {readout}"]
    if rng.random() < 0.5:
        lines.append(f"output y = {rng.choice(['sigmoid(r)', 'r / max(abs(r), 1)', 'r * 2'])}")
    return "\n".join(lines) + "\n"


def generate_spec(rng: random.Random) -> str:
    """A random spec built from the language's vocabulary: half the time shape-coherent (it
    usually compiles), half the time freer (it reaches the diagnostics)."""
    if rng.random() < 0.5:
        return _coherent_spec(rng)
    dims = rng.sample(["D", "N", "K", "V", "H"], rng.randint(1, 4))
    lines = [f"scan gen{rng.randint(0, 99)}",
             "dims " + ", ".join(f"{d} = {rng.choice([1, 2, 4, 8, 16])}" for d in dims)]
    if "H" in dims and rng.random() < 0.5:
        lines.append("heads H")
        if len(dims) > 1 and rng.random() < 0.8:
            dims.remove("H")
    if rng.random() < 0.15:
        lines += ["semiring u over " + rng.choice(["reals", "nonneg", "extended_reals"]) + " {",
                  f"  add(x, y) = {rng.choice(_USER_OPS)}",
                  f"  mul(x, y) = {rng.choice(_USER_OPS)}",
                  f"  zero = {rng.choice(['0', '-inf', 'inf', '1'])}",
                  f"  one = {rng.choice(['0', '1'])}", "}"]
    else:
        lines.append(f"semiring {rng.choice(_SEMIRINGS)}")
    names = []
    for i in range(rng.randint(1, 4)):
        lines.append(f"input x{i} : {_shape(rng, dims)}")
        names.append(f"x{i}")
    if rng.random() < 0.5:
        lines.append(f"param p0 : {_shape(rng, dims)} init "
                     f"{rng.choice(['randn()', 'uniform(-1, 1)', '1', 'arange(' + dims[0] + ')'])}")
        names.append("p0")
    for i in range(rng.randint(0, 3)):
        lines.append(f"let l{i} = {_expr(rng, names)}")
        names.append(f"l{i}")
    lines.append(f"state h : {_shape(rng, dims)}")
    a, b = rng.choice(names), rng.choice(names)
    form = rng.random()
    if form < 0.5:
        lines.append(f"h = {a} * h + {b}")
    elif form < 0.8:
        ctor = rng.choice(_CONSTRUCTORS).format(v=a, m=b)
        ctor = f"({ctor})" if ctor.startswith("identity") else ctor
        lines.append(f"h = {ctor} @ h + {b}" if rng.random() < 0.7 else f"h = h @ {ctor} + {b}")
    else:
        lines.append(f"h = {_expr(rng, names + ['h'])}")
    lines.append(f"readout r = {rng.choice(['h', 'sum(h, axis=0)', a + ' @ h', a + ' * h'])}")
    if rng.random() < 0.4:
        lines.append(f"output y = {rng.choice(['r', 'sigmoid(r)', 'r / max(abs(r), 1)'])}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- mutation


def mutate_tokens(rng: random.Random, source: str) -> str:
    """Delete, duplicate, swap or replace a few tokens of `source`."""
    toks = _TOKEN.findall(source)
    for _ in range(rng.randint(1, 4)):
        if not toks:
            break
        i = rng.randrange(len(toks))
        op = rng.random()
        if op < 0.3:
            del toks[i]
        elif op < 0.5:
            toks.insert(i, toks[i])
        elif op < 0.65:
            j = rng.randrange(len(toks))
            toks[i], toks[j] = toks[j], toks[i]
        elif op < 0.9:
            toks[i] = rng.choice(_POOL)
        else:
            toks.insert(i, rng.choice(_POOL) * rng.choice([1, 2, 50, 300]))
    return "".join(toks)


def mutate_lines(rng: random.Random, source: str) -> str:
    """Delete, duplicate, move or splice lines (statement order, misplaced declarations)."""
    lines = source.split("\n")
    for _ in range(rng.randint(1, 3)):
        i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
        op = rng.random()
        if op < 0.3 and len(lines) > 1:
            del lines[i]
        elif op < 0.55:
            lines.insert(j, lines[i])
        elif op < 0.85:
            lines.insert(j, lines.pop(i))
        else:
            cut = rng.randrange(len(lines[i]) + 1)
            lines[i] = lines[i][:cut] + lines[j][rng.randrange(len(lines[j]) + 1):]
    return "\n".join(lines)


def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    """Flip, insert, delete or repeat a few bytes of `data`."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        i = rng.randrange(len(buf) + 1)
        op = rng.random()
        if op < 0.3 and buf:
            buf[min(i, len(buf) - 1)] ^= 1 << rng.randrange(8)
        elif op < 0.55:
            buf[i:i] = bytes([rng.randrange(256)])
        elif op < 0.8 and buf:
            del buf[i:i + rng.randint(1, 8)]
        elif op < 0.9:
            buf[i:i] = rng.choice([b"\xff\xfe", b"\x00", b"\xe2\x8a\x95", b"(" * 150, b"\r"])
        else:
            buf[i:i] = buf[i:i + 16] * rng.randint(2, 40)
    return bytes(buf)


# --------------------------------------------------------------------------- the run


class _Timeout(Exception):
    pass


def _algebra(scan_ir, report: FuzzReport, seen: set) -> None:
    try:
        from madc.algebra import check_ir
    except ImportError:
        return
    sr = scan_ir.semiring
    key = (sr.domain, str(sr.add), str(sr.mul), str(sr.zero), str(sr.one),
           tuple(u.transition.structure for u in scan_ir.updates))
    if key in seen:
        return
    seen.add(key)
    use_alarm = threading.current_thread() is threading.main_thread() and hasattr(
        signal, "setitimer")
    if use_alarm:
        def on_alarm(signum, frame):
            raise _Timeout()

        old = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, ALGEBRA_SECONDS)
    try:
        check_ir(scan_ir)
        report.algebra_checked += 1
    except _Timeout:
        report.algebra_skipped += 1
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)


def run_one(data: str | bytes, scratch: Path) -> object:
    """Load one input (text directly, bytes through a file); returns the ScanIR or raises."""
    from madc.frontend import load_spec

    if isinstance(data, bytes):
        scratch.write_bytes(data)
        return load_spec(scratch, path="fuzz.scan")
    return load_spec(data, path="fuzz.scan")


def run_front_end_fuzz(examples: int, seed: int, out_dir: str | Path, *,
                       quiet: bool = False) -> FuzzReport:
    """Feed `examples` generated and mutated inputs to the front end (and the algebra checker
    for accepted ones). Internal errors are saved under `out_dir`; prints a summary unless
    `quiet`. Returns the `FuzzReport` (`int(report)` is the exit status)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scratch = out / "current_input.scan"
    rng = random.Random(seed)
    zoo = zoo_sources()
    report = FuzzReport()
    seen: set = set()
    start = time.perf_counter()
    for i in range(examples):
        kind = i % 4
        if kind == 0:
            data: str | bytes = generate_spec(rng)
        elif kind == 1:
            data = mutate_tokens(rng, rng.choice(zoo))
        elif kind == 2:
            data = mutate_lines(rng, rng.choice(zoo))
        else:
            data = mutate_bytes(rng, rng.choice(zoo).encode("utf-8"))
        report.examples += 1
        try:
            scan_ir = run_one(data, scratch)
            report.accepted += 1
            _algebra(scan_ir, report, seen)
        except CompileError:
            report.refused += 1
        except Exception:  # noqa: BLE001 - every other exception is what we are hunting
            report.failures.append(_save(out, len(report.failures), data,
                                         traceback.format_exc()))
    scratch.unlink(missing_ok=True)
    report.seconds = time.perf_counter() - start
    if not quiet:
        print(report.summary())
    return report


def _save(out: Path, n: int, data: str | bytes, tb: str) -> Path:
    path = out / f"failure_{n:04d}.scan"
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass"))
    path.with_suffix(".txt").write_text(tb, encoding="utf-8")
    return path
