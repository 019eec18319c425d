"""Emits a spec's `prologue.py`: the spec-specific half of the emitted package.

Param init, the `let` prologue, each state's transition factors and injected term, the
readouts and the outputs become torch functions of whole tensors (see `codegen/prologue.py.j2`
and `docs/runtime.md`). The reference and chunked backends are spec-independent code that
calls these functions.
"""

from __future__ import annotations

from madc.codegen.templates import render
from madc.codegen.torch_print import (
    CodegenError,
    TorchPrinter,
    py_name,
    refs,
    strip_parens,
)
from madc.ir import Ref, ScanIR

_ENV_KINDS = ("input", "param", "let")


def shape_source(shape, heads: str | None = None) -> str:
    """A per-token shape as a Python tuple of ints reading `dims` (heads first if given)."""
    items = ([f'dims["{heads}"]'] if heads else []) + [
        f'dims["{d}"]' if isinstance(d, str) else str(int(d)) for d in shape]
    return items[0] + "," if len(items) == 1 else ", ".join(items)


def _shape_literal(shape) -> str:
    """A per-token shape as a tuple literal of dim names and ints."""
    items = [f'"{d}"' if isinstance(d, str) else str(int(d)) for d in shape]
    if len(items) == 1:
        return f"({items[0]},)"
    return "(" + ", ".join(items) + ")"


def _top_level_split(text: str) -> list[str]:
    """`text` split at its commas outside brackets and strings (empty parts dropped)."""
    parts, depth, start, quote = [], 0, 0, None
    for i, ch in enumerate(text):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return [p for p in parts if p]


def _closing(text: str, i: int) -> int:
    """Index of the bracket closing the one at `i`."""
    depth = 0
    for j in range(i, len(text)):
        depth += text[j] in "([{"
        depth -= text[j] in ")]}"
        if depth == 0:
            return j
    raise CodegenError(f"unbalanced brackets in emitted code: {text}")


def wrap(line: str, width: int) -> list[str]:
    """Break a line longer than `width` at the arguments of its first parenthesis that holds
    several (one per line, hanging indent), recursively; shorter lines are kept."""
    if len(line) <= width:
        return [line]
    indent = " " * (len(line) - len(line.lstrip()))
    for i, ch in enumerate(line):
        if ch != "(":
            continue
        j = _closing(line, i)
        parts = _top_level_split(line[i + 1:j])
        if len(parts) < 2 and not line[i + 1:j].rstrip().endswith(","):
            continue
        out = [line[:i + 1]]
        for part in parts:
            out += wrap(f"{indent}    {part},", width)
        return out + wrap(indent + line[j:], width)
    return [line]


def _wrapped(lines: list[str], width: int = 96) -> list[str]:
    """Every body line wrapped to `width` (the template indents bodies by 4)."""
    return [piece for line in lines for piece in wrap(line, width)]


def _bind(exprs, source_of) -> list[str]:
    """Lines binding every name the expressions read, in first-seen order."""
    lines, seen = [], set()
    for expr in exprs:
        for ref in refs(expr):
            if ref.kind == "dim" or ref.name in seen:
                continue
            seen.add(ref.name)
            lines.append(f"{py_name(ref.name)} = {source_of(ref)}")
    return lines


def _env_source(ref: Ref) -> str:
    if ref.kind in _ENV_KINDS:
        return f'env["{ref.name}"]'
    raise CodegenError(f"{ref.kind} {ref.name!r} cannot be read here")


def _like_line(ir: ScanIR, source: str) -> list[str]:
    """`dtype`/`device` of the working tensors, from the first input."""
    if not ir.inputs:
        raise CodegenError("a spec needs at least one input")
    first = ir.inputs[0].name
    return [f"dtype, device = {source}[\"{first}\"].dtype, {source}[\"{first}\"].device",
            f"like = {source}[\"{first}\"]"]


def _lets_body(ir: ScanIR, printer: TorchPrinter) -> list[str]:
    lines = [f'{py_name(i.name)} = inputs["{i.name}"]' for i in ir.inputs]
    lines += [f'{py_name(p.name)} = params["{p.name}"]' for p in ir.params]
    body = [f"{py_name(let.name)} = {strip_parens(printer.doprint(let.expr))}"
            for let in ir.lets]
    if any("dtype" in line or "device" in line for line in body):
        lines += _like_line(ir, "inputs")[:1]
    lines += body
    names = [i.name for i in ir.inputs] + [p.name for p in ir.params] + [t.name for t in ir.lets]
    lines.append("return {")
    lines += [f'    "{n}": {py_name(n)},' for n in names]
    lines.append("}")
    return lines


def _transition_exprs(update) -> list:
    tr = update.transition
    if tr.side == "elementwise":
        return [tr.coeff] if tr.coeff is not None else []
    return [arg for factor in tr.factors for arg in factor.args]


def _transition_entry(ir: ScanIR, update, printer: TorchPrinter, rank: int) -> str:
    tr = update.transition
    if tr.side == "elementwise":
        if tr.structure not in ("identity", "scalar", "diagonal"):
            raise CodegenError(f"elementwise transition of class {tr.structure!r}")
        if tr.coeff is None:
            return "()"
        coeff = f"lead({strip_parens(printer.aligned(tr.coeff, rank))}, {rank}, like)"
        return f'(("coeff", ({coeff},)),)'
    if tr.side not in ("left", "right"):
        raise CodegenError(f"unknown transition side {tr.side!r}")
    parts = []
    for factor in tr.factors:
        if factor.kind == "identity_minus_outer" and not printer.sr.is_real:
            raise CodegenError("identity - outer(u, w) needs the real semiring")
        args = "".join(f"lead({strip_parens(printer.doprint(a))}, {len(a.shape)}, like), "
                       for a in factor.args)
        parts.append(f'("{factor.kind}", ({args.rstrip(" ")})),')
    return "(" + " ".join(parts) + ")"


def _with_like(ir: ScanIR, binds: list[str], body: list[str]) -> list[str]:
    """`binds`, the dtype/device/like lines that `body` uses, then `body`."""
    text = "\n".join(body)
    like = _like_line(ir, "env")
    lines = list(binds)
    if "dtype" in text or "device" in text:
        lines.append(like[0])
    if "like)" in text:
        lines.append(like[1])
    return lines + body


def _transitions_body(ir: ScanIR, printer: TorchPrinter) -> list[str]:
    exprs = [e for u in ir.updates for e in _transition_exprs(u)]
    body = ["return {"]
    for update, state in zip(ir.updates, ir.states):
        entry = _transition_entry(ir, update, printer, len(state.shape))
        body.append(f'    "{state.name}": {entry},')
    body.append("}")
    return _with_like(ir, _bind(exprs, _env_source), body)


def _injects_body(ir: ScanIR, printer: TorchPrinter) -> list[str]:
    exprs = [u.inject for u in ir.updates if u.inject is not None]
    body = ["return {"]
    for update, state in zip(ir.updates, ir.states):
        rank = len(state.shape)
        if update.inject is None:
            body.append(f'    "{state.name}": None,')
        else:
            value = strip_parens(printer.aligned(update.inject, rank))
            body.append(f'    "{state.name}": lead({value}, {rank}, like),')
    body.append("}")
    return _with_like(ir, _bind(exprs, _env_source), body)


def _readouts_body(ir: ScanIR, printer: TorchPrinter) -> list[str]:
    def source(ref: Ref) -> str:
        if ref.kind == "state":
            return f'states["{ref.name}"]'
        if ref.kind == "readout":
            return f'out["{ref.name}"]'
        return _env_source(ref)

    lines = ["out = {}"]
    done: set[str] = set()
    for readout in ir.readouts:
        for line in _bind([readout.expr], source):
            name = line.split(" = ")[0]
            if name not in done:
                lines.append(line)
                done.add(name)
        needs_like = "dtype" in printer.doprint(readout.expr)
        if needs_like and "dtype" not in done:
            lines += _like_line(ir, "env")[:1]
            done.add("dtype")
        lines.append(f'out["{readout.name}"] = {strip_parens(printer.doprint(readout.expr))}')
    lines.append("return out")
    return lines


def _outputs_body(ir: ScanIR, printer: TorchPrinter) -> list[str]:
    def source(ref: Ref) -> str:
        if ref.kind == "readout":
            return f'readouts["{ref.name}"]'
        return _env_source(ref)

    exprs = [o.expr for o in ir.outputs]
    lines = _bind(exprs, source)
    if any("dtype" in printer.doprint(e) for e in exprs):
        lines += _like_line(ir, "env")[:1]
    values = "".join(f"{printer.doprint(e)}, " for e in exprs).rstrip(" ")
    lines.append(f"return ({values})")
    return lines


def _params(ir: ScanIR) -> list[dict]:
    out = []
    for p in ir.params:
        shape = shape_source(p.shape, ir.heads if p.per_head else None)
        printer = TorchPrinter(ir, shape_code="shape")
        value = f"value = {strip_parens(printer.doprint(p.init))}"
        out.append({"name": p.name, "shape": shape,
                    "init": "\n    ".join(wrap(value, 96))})
    return out


def _states(ir: ScanIR) -> list[dict]:
    out = []
    for update, state in zip(ir.updates, ir.states):
        if update.state != state.name:
            raise CodegenError("updates must be in the order of the states")
        # block_diag and monarch act on two state axes at once (their size is a pair)
        acted = 2 if isinstance(update.transition.size, tuple) else 1
        out.append({"name": state.name, "shape": _shape_literal(state.shape),
                    "side": update.transition.side, "rank": len(state.shape), "acted": acted,
                    "full_shape": shape_source(state.shape, ir.heads)})
    return out


def emit_prologue(ir: ScanIR, header: str) -> str:
    """The source of the package module `prologue.py` for `ir`."""
    printer = TorchPrinter(ir, guarded=True)
    bodies = {
        "lets_body": _wrapped(_lets_body(ir, printer)),
        "transitions_body": _wrapped(_transitions_body(ir, printer)),
        "injects_body": _wrapped(_injects_body(ir, printer)),
        "readouts_body": _wrapped(_readouts_body(ir, printer)),
        "outputs_body": _wrapped(_outputs_body(ir, printer)),
    }
    params = _params(ir)
    text = "\n".join([line for body in bodies.values() for line in body]
                     + [p["init"] for p in params])
    varying = sorted([i.name for i in ir.inputs] + [t.name for t in ir.lets
                                                    if t.expr.varying])
    lead_names = "H, " if ir.heads else ""
    return render(
        "prologue.py.j2",
        header=header,
        name=ir.name,
        lead=3 if ir.heads else 2,
        lead_doc="B, T, H" if ir.heads else "B, T",
        lead_names=lead_names,
        static_lead="H?, " if ir.heads else "",
        heads=f'"{ir.heads}"' if ir.heads else "None",
        states=_states(ir),
        varying="{" + ", ".join(f'"{v}"' for v in varying) + "}" if varying else "()",
        readouts=_shape_literal([r.name for r in ir.readouts]),
        params=params,
        uses_functional="F." in text,
        uses_semiring="sr." in text,
        **bodies,
    )
