"""madc: a compiler for scan operators.

`madc.load(spec)` returns an `nn.Module`; `madc.frontend.load_spec(spec)` the verified IR.
"""

__version__ = "0.1.0"


def load(path_or_source, backend: str = "auto", **kwargs):
    """Compile a `.scan` spec (a path or the source text) and return its `nn.Module`.

    See `docs/runtime.md`. Keyword arguments are dims (`D=128`) and options
    (`chunk_size=`, `allow_promotion=`).
    """
    from madc.runtime import load as _load

    return _load(path_or_source, backend=backend, **kwargs)


def __getattr__(name: str):
    # Lazy so `import madc` stays cheap (no torch) for `madc check`.
    if name == "InputError":
        from madc.runtime import InputError

        return InputError
    if name == "CompileError":
        from madc.errors import CompileError

        return CompileError
    raise AttributeError(f"module 'madc' has no attribute {name!r}")
