"""Walkthrough 2 (examples/02_semiring_swap.md): one recurrence in four semirings, two refusals.

`h = a * h + x` read in the real, log and tropical semirings and in a user-defined (max, +)
semiring. The script checks the relations between their outputs that the algebra predicts:
the log semiring is the real one seen through `log` (on positive values), the tropical one is
its max-approximation, and the hand-written (max, +) block gives exactly the built-in tropical
outputs. Then `(max, *)` over the reals is refused with a counterexample that the script
re-evaluates, and a mistake in a spec is a `file:line:col` diagnostic. CPU only, tiny shapes.

    python examples/02_semiring_swap.py
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import torch

import madc
from madc.algebra import check_ir
from madc.compile import compile_spec
from madc.frontend import load_spec

HERE = Path(__file__).resolve().parent


def run(name: str, a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Outputs of examples/<name>.scan: the float64 reference, checked against the chunked
    backend (chunk of 4 tokens, so the chunked form is really exercised)."""
    mod = madc.load(str(HERE / f"{name}.scan"), backend="reference")
    y_ref = mod(a=a, x=x)
    mod.backend, mod.chunk_size = "chunked", 4
    y_chk = mod(a=a, x=x)
    err = (y_chk - y_ref).abs().max().item()
    print(f"{name:14s} y[0, :, 0] = {[round(v, 3) for v in y_ref[0, :, 0].tolist()]}"
          f"   chunked vs reference {err:.1e}")
    assert err < 1e-12, f"{name}: chunked backend differs from the reference by {err}"
    return y_ref


def swap() -> None:
    """The same update in four semirings, and how their outputs relate."""
    torch.manual_seed(0)
    B, T, D = 2, 11, 4
    decay = torch.rand(B, T, D, dtype=torch.float64) * 0.5 + 0.5     # a in (0.5, 1)
    value = torch.rand(B, T, D, dtype=torch.float64) + 0.1            # x > 0

    y_real = run("swap_real", decay, value)
    # log semiring: h = logaddexp(log a + h, log x), i.e. log of the real recurrence.
    y_log = run("swap_log", decay.log(), value.log())
    # tropical semiring: h = max(log a + h, log x), the largest single term of that sum.
    y_trop = run("swap_tropical", decay.log(), value.log())
    y_user = run("swap_user", decay.log(), value.log())

    iso = (y_log - y_real.log()).abs().max().item()
    print(f"log semiring vs log(real semiring): {iso:.1e}")
    assert iso < 1e-12
    # max <= logsumexp <= max + log(#terms); at step t (0-based) there are t + 1 terms.
    terms = torch.arange(1, T + 1, dtype=torch.float64)[None, :, None]
    assert (y_trop <= y_log + 1e-12).all() and (y_log <= y_trop + terms.log() + 1e-12).all()
    gap = (y_log - y_trop).max().item()
    print(f"tropical <= log <= tropical + log(t + 1): holds (largest gap {gap:.3f}, "
          f"bound {math.log(T):.3f})")
    assert torch.equal(y_user, y_trop), "the user (max, +) block differs from tropical"
    print("user-defined (max, +) semiring == built-in tropical: exactly")

    # The emitted semiring modules differ only in their 3-line header (path, hash, name).
    with tempfile.TemporaryDirectory() as out:
        texts = [(compile_spec(str(HERE / f"{name}.scan"), out) / "semiring.py").read_text()
                 for name in ("swap_tropical", "swap_user")]
    same = texts[0].splitlines()[3:] == texts[1].splitlines()[3:]
    print(f"emitted semiring.py of swap_user == swap_tropical's past the header: {same}")
    assert same


def refusal() -> None:
    """(max, *) over the reals: the checker's counterexample, evaluated by hand."""
    path = HERE / "swap_max_times_reals.scan"
    report = check_ir(load_spec(str(path)))
    check = report.check("semiring.left_distributive")
    print(f"{check.name}: {check.verdict}: {check.detail}")
    assert report.status == "refuted" and check.verdict == "refuted"
    a, b, c = (float(check.counterexample[k]) for k in ("a", "b", "c"))
    lhs, rhs = a * max(b, c) + 0.0, max(a * b, a * c) + 0.0   # + 0.0: print -0 as 0
    print(f"  by hand: a * max(b, c) = {lhs:g}, max(a * b, a * c) = {rhs:g}")
    assert lhs != rhs
    try:
        madc.load(str(path))
    except madc.CompileError as err:
        assert "E0901" in err.codes()
        print(f"madc.load refuses it: {err.codes()}")
    else:
        raise AssertionError("a refuted semiring was compiled")


def mistake() -> None:
    """A real-arithmetic call in a semiring line: a diagnostic, not a traceback."""
    try:
        # `path` names the file in diagnostics; here relative to the repository root.
        load_spec((HERE / "swap_mistake.scan").read_text(), path="examples/swap_mistake.scan")
    except madc.CompileError as err:
        text = err.render()
        print(text)
        assert err.codes() == ["E0401"]
        assert text.startswith("examples/swap_mistake.scan:11:13: error[E0401]"), text
    else:
        raise AssertionError("the mistake was accepted")


def main() -> None:
    """Run the three parts of the walkthrough."""
    swap()
    refusal()
    mistake()
    print("ok")


if __name__ == "__main__":
    main()
