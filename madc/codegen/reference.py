"""Emits the reference backend: `semiring.py` (the semiring spelled in torch, and every
structure class applied in it) and `reference.py` (the sequential scan), see
`codegen/semiring.py.j2` and `codegen/reference.py.j2`.
"""

from __future__ import annotations

from madc.codegen.templates import render
from madc.codegen.torch_print import SemiringSpelling
from madc.ir import ScanIR


def emit_semiring(ir: ScanIR, header: str) -> str:
    """The source of the package module `semiring.py` for `ir.semiring`."""
    spelling = SemiringSpelling(ir.semiring, guarded=True)
    return render(
        "semiring.py.j2",
        header=header,
        semiring_name=ir.semiring.name,
        zero=spelling.zero,
        one=spelling.one,
        is_real=spelling.is_real,
        logaddexp="add_is_logaddexp" in ir.semiring.facts,
        add=spelling.add("x", "y").replace("sr.", ""),
        mul=spelling.mul("x", "y").replace("sr.", ""),
        ssum=spelling.sum("x", "dim").replace("sr.", ""),
    )


def emit(ir: ScanIR, header: str) -> str:
    """The source of the package module `reference.py` (the sequential oracle)."""
    return render("reference.py.j2", header=header, name=ir.name,
                  semiring_name=ir.semiring.name)
