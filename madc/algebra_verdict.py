"""The algebra checker's answers: three-valued `Check`s collected into a `Report`.

A check is **proved** (sympy, z3 or an exhaustive enumeration showed it), **refuted** (it
carries concrete small values that were re-evaluated and demonstrably fail) or **unproven**
(neither: the detail says how many numeric trials found no counterexample). "sympy did not
simplify to 0" is never a refutation. See `docs/checker.md` for every check's name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

PROVED = "proved"
REFUTED = "refuted"
UNPROVEN = "unproven"
VERDICTS = (PROVED, REFUTED, UNPROVEN)

Verdict = Literal["proved", "refuted", "unproven"]


@dataclass(frozen=True, slots=True)
class Check:
    """One verdict. `counterexample` is set exactly when the verdict is "refuted": a JSON-ready
    dict of the concrete values (infinities spelled "inf"/"-inf") and what they evaluate to.
    Results are cached and shared: treat `counterexample` as read-only."""

    name: str
    verdict: Verdict
    counterexample: dict | None
    detail: str

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")
        if (self.verdict == REFUTED) != (self.counterexample is not None):
            raise ValueError("a counterexample is required exactly for a refuted check")

    def renamed(self, name: str) -> Check:
        """The same verdict under another name (cached results are shared between specs)."""
        return Check(name, self.verdict, self.counterexample, self.detail)

    def to_json(self) -> dict:
        """`{name, verdict, counterexample, detail}` (the schema of `docs/checker.md`)."""
        return {"name": self.name, "verdict": self.verdict,
                "counterexample": self.counterexample, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Report:
    """Every check of one spec, in a stable order (semiring axioms, combine, closures)."""

    spec: str
    path: str
    checks: tuple

    @property
    def status(self) -> Verdict:
        """"refuted" if any check is refuted, else "unproven" if any is, else "proved"."""
        verdicts = {c.verdict for c in self.checks}
        if REFUTED in verdicts:
            return REFUTED
        if UNPROVEN in verdicts:
            return UNPROVEN
        return PROVED

    def check(self, name: str) -> Check:
        """The check called `name` (KeyError naming the available ones otherwise)."""
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(f"no check {name!r}; this report has {[c.name for c in self.checks]}")

    def to_json(self) -> dict:
        """`{path, spec, checks: [...], status}` (the schema of `docs/checker.md`)."""
        return {"path": self.path, "spec": self.spec,
                "checks": [c.to_json() for c in self.checks], "status": self.status}


def plain(value) -> int | float | str:
    """A number as a counterexample shows it: ints stay ints, integral floats become ints,
    infinities and nan become the strings "inf", "-inf", "nan" (JSON has no spelling for
    them); exact fractions that are not integers become floats when exact, else "p/q"."""
    if isinstance(value, Fraction):
        if value.denominator == 1:
            return int(value.numerator)
        as_float = float(value)
        return as_float if Fraction(as_float) == value else f"{value.numerator}/{value.denominator}"
    if isinstance(value, int):
        return value
    value = float(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def parse_plain(value) -> float:
    """The inverse of `plain` for scalars: "inf" -> inf, "p/q" -> p/q as float."""
    if isinstance(value, str) and "/" in value:
        return float(Fraction(value))
    return float(value)
