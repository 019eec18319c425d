"""Walkthrough 1 (examples/01_new_operator.md): a new gated diagonal RNN, end to end in Python.

Loads `examples/my_rnn.scan`, runs it forward and backward, checks the chunked backend against
the sequential float64 reference and against a hand-written loop of the recurrence, and shows
that a shape mistake is an `InputError` naming the argument. CPU only, tiny shapes; exits
non-zero (an AssertionError) if any comparison fails.

    python examples/01_new_operator.py
"""

from __future__ import annotations

from pathlib import Path

import torch

import madc

SPEC = Path(__file__).resolve().parent / "my_rnn.scan"


def hand_written(mod: torch.nn.Module, x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """The recurrence of my_rnn.scan as a plain Python loop (what a researcher writes today)."""
    f_bias, a_min = mod.f_bias.to(x.dtype), mod.a_min.to(x.dtype)
    a = a_min + (1 - a_min) * torch.sigmoid(f + f_bias)
    b = (1 - a) * torch.tanh(x)
    h = torch.zeros_like(x[:, 0])
    ys = []
    for t in range(x.shape[1]):
        h = a[:, t] * h + b[:, t]
        ys.append(h)
    return torch.stack(ys, dim=1)


def main() -> None:
    """Run the walkthrough's checks and print what they compare."""
    torch.manual_seed(0)
    mod = madc.load(str(SPEC), backend="chunked", D=8)
    print(f"inputs {dict(mod.inputs)}  outputs {mod.outputs}  params "
          f"{[name for name, _ in mod.named_parameters()]}")

    # A float64 copy of the same module: the reference backend is the oracle.
    mod.double()
    B, T = 2, 37                      # T not a multiple of the chunk: the last chunk is partial
    x = torch.randn(B, T, 8, dtype=torch.float64, requires_grad=True)
    f = torch.randn(B, T, 8, dtype=torch.float64, requires_grad=True)

    mod.backend, mod.chunk_size = "reference", None
    y_ref, h_ref = mod(x=x, f=f, return_state=True)
    g_ref = torch.autograd.grad(y_ref.square().sum(), (x, f, mod.f_bias, mod.a_min))

    mod.backend, mod.chunk_size = "chunked", 8
    y_chk, h_chk = mod(x=x, f=f, return_state=True)
    g_chk = torch.autograd.grad(y_chk.square().sum(), (x, f, mod.f_bias, mod.a_min))

    out_err = (y_chk - y_ref).abs().max().item()
    grad_err = max((a - b).abs().max().item() for a, b in zip(g_chk, g_ref))
    loop_err = (hand_written(mod, x, f) - y_ref).abs().max().item()
    print(f"y {tuple(y_ref.shape)}, final state {tuple(h_ref.shape)}")
    print(f"chunked vs reference: output {out_err:.1e}, grads {grad_err:.1e}")
    print(f"reference vs hand-written loop: {loop_err:.1e}")
    assert out_err < 1e-12 and grad_err < 1e-12 and loop_err < 1e-12
    assert torch.equal(h_ref, y_ref[:, -1]), "the final state is the last readout"

    # Continuing from a returned state equals running the whole sequence at once.
    y1, h1 = mod(x=x[:, :20], f=f[:, :20], return_state=True)
    y2 = mod(x=x[:, 20:], f=f[:, 20:], initial_state=h1)
    split_err = (torch.cat([y1, y2], dim=1) - y_chk).abs().max().item()
    print(f"two halves with initial_state vs one pass: {split_err:.1e}")
    assert split_err < 1e-12

    # Runtime mistakes name the argument, what was got and what was expected.
    try:
        mod(x=x, f=f[..., :3])
    except madc.InputError as err:
        print(f"InputError: {err}")
    else:
        raise AssertionError("a wrong shape was accepted")
    print("ok")


if __name__ == "__main__":
    main()
