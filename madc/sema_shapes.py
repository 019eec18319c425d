"""Shape rules with named dims, shared by `sema` and `verify`.

A shape is a tuple of dims; a dim is a name (`"D"`) or an int. Two dims agree when they are
the same name or the same int; the int 1 broadcasts against anything (numpy rules, right
aligned). Named dims never broadcast against each other: `D` and `N` may be set to anything.
"""

from __future__ import annotations


def fmt_shape(shape) -> str:
    """`[D, N]` as written in a spec."""
    return "[" + ", ".join(str(d) for d in shape) + "]"


def broadcast(a: tuple, b: tuple) -> tuple | None:
    """numpy broadcasting of two shapes, right-aligned; None when they do not broadcast."""
    out = []
    for i in range(1, max(len(a), len(b)) + 1):
        da = a[-i] if i <= len(a) else 1
        db = b[-i] if i <= len(b) else 1
        if da == db:
            out.append(da)
        elif da == 1:
            out.append(db)
        elif db == 1:
            out.append(da)
        else:
            return None
    return tuple(reversed(out))


def matmul_shape(a: tuple, b: tuple) -> tuple | None:
    """numpy `@` on per-token shapes: [m,n]@[n] -> [m], [n]@[n,k] -> [k], [n]@[n] -> [],
    [..., m, n]@[..., n, k] -> [..., m, k]; None when the shapes do not fit."""
    if not a or not b:
        return None
    a2 = (1,) + tuple(a) if len(a) == 1 else tuple(a)
    b2 = tuple(b) + (1,) if len(b) == 1 else tuple(b)
    if a2[-1] != b2[-2]:
        return None
    batch = broadcast(a2[:-2], b2[:-2])
    if batch is None:
        return None
    out = batch
    if len(a) > 1:
        out = out + (a2[-2],)
    if len(b) > 1:
        out = out + (b2[-1],)
    return out


def outer_shape(a: tuple, b: tuple) -> tuple | None:
    """outer(u, v): [..., m] and [..., n] -> [..., m, n] (leading axes broadcast)."""
    if not a or not b:
        return None
    batch = broadcast(a[:-1], b[:-1])
    if batch is None:
        return None
    return batch + (a[-1], b[-1])


def normalise_axis(axis: int, ndim: int) -> int | None:
    """An axis as written (`0`, `1`, `-1`) -> negative form, or None when out of range."""
    if -ndim <= axis < 0:
        return axis
    if 0 <= axis < ndim:
        return axis - ndim
    return None


def size_of(shape: tuple, dims: dict) -> int:
    """Number of elements of `shape` at the dims' default sizes."""
    n = 1
    for d in shape:
        n *= dims.get(d, 1) if isinstance(d, str) else int(d)
    return n
