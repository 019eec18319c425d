"""The algebra checker: can this spec be computed by a parallel scan?

`check_ir(ir)` runs every check for one spec and returns a `Report` of three-valued `Check`s:

1. `semiring.domain_closed` — ⊕ and ⊗ keep values in the carrier (`algebra_domain`), then
   `semiring.<axiom>` — the eight semiring axioms within the declared domain
   (`algebra_semiring.SEMIRING_LAWS`);
2. `combine.associative` — the scan combine (A1, b1) • (A2, b2) = (A2 ⊗ A1, A2 ⊗ b1 ⊕ b2)
   checked directly on scalars;
3. `closure.<state>` — for each state update, closure of its transition's structure class
   under products (`algebra_closure`).

Why these suffice (the law the scan backends rely on): a chunked or tree scan regroups
h_t = A_t ⊗ h_{t-1} ⊕ b_t as ((e_1 • e_2) • e_3) = (e_1 • (e_2 • e_3)); that needs • to be
associative, which follows from ⊗-associativity, left distributivity and ⊕-associativity, and,
for a matrix transition, the product A2 ⊗ A1 to stay in the class the kernel stores.

Results are cached per semiring (domain, add, mul, zero, one) and per (class, semiring), so
checking the whole operator zoo takes seconds. The names are stable; `docs/checker.md` lists
them with the JSON schema of `madc check --json`.
"""

from __future__ import annotations

from madc.algebra_closure import CLASSES, check_closure
from madc.algebra_domain import check_domain
from madc.algebra_prove import prove_equal
from madc.algebra_semiring import SEMIRING_LAWS, check_combine, check_semiring
from madc.algebra_verdict import PROVED, REFUTED, UNPROVEN, VERDICTS, Check, Report
from madc.ir import ScanIR

__all__ = [
    "CLASSES", "PROVED", "REFUTED", "SEMIRING_LAWS", "UNPROVEN", "VERDICTS", "Check", "Report",
    "check_closure", "check_combine", "check_domain", "check_ir", "check_names",
    "check_semiring", "prove_equal",
]


def check_names(ir: ScanIR) -> tuple:
    """The names of the checks `check_ir` runs for `ir`, in report order."""
    return (("semiring.domain_closed",) + tuple(name for name, *_ in SEMIRING_LAWS)
            + ("combine.associative",) + tuple(f"closure.{u.state}" for u in ir.updates))


def check_ir(ir: ScanIR) -> Report:
    """Every algebra check of one spec, named as `check_names(ir)` lists them: the carrier is
    closed, the semiring axioms, combine associativity, and closure of each update's
    transition class (in the spec's semiring)."""
    checks = [check_domain(ir.semiring), *check_semiring(ir.semiring)]
    checks.append(check_combine(ir.semiring))
    for update in ir.updates:
        closure = check_closure(update.transition.structure, ir.semiring)
        checks.append(closure.renamed(f"closure.{update.state}"))
    return Report(ir.name, ir.path, tuple(checks))
