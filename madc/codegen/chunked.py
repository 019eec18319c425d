"""Emits the chunked backend `chunked.py`: a chunkwise-parallel scan in pure PyTorch (the
algebra is in `docs/chunked.md`, the code in `codegen/chunked.py.j2`)."""

from __future__ import annotations

from madc.codegen.templates import render
from madc.ir import ScanIR


def emit(ir: ScanIR, header: str) -> str:
    """The source of the package module `chunked.py`."""
    return render("chunked.py.j2", header=header, name=ir.name)
