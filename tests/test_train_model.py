"""The model around an operator: shapes from `inputs`/`heads`/`outputs`, registered params,
and a tiny model that overfits a fixed batch."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

from madc.train.loop import TrainConfig, make_optimizer
from madc.train.model import ModelConfig, ScanLayer, build_model, masked_loss_sums
from madc.train.tasks import make_task


class FakeScan(nn.Module):
    """A pure-torch operator with the runtime's interface (docs/runtime.md): a gated diagonal
    recurrence h = sigmoid(a + bias) * h + x per head, outputs y = h and z = sum(h)."""

    def __init__(self, d: int = 8, heads: int | None = None, two_outputs: bool = False):
        super().__init__()
        self.inputs = OrderedDict(x=(d,), a=(d,))
        self.heads = heads
        self.outputs = ("y", "z") if two_outputs else ("y",)
        self.bias = nn.Parameter(torch.zeros(d))
        self.calls = []

    def forward(self, x, a):
        self.calls.append((tuple(x.shape), tuple(a.shape), x.dtype))
        g = torch.sigmoid(a + self.bias)
        h, ys = torch.zeros_like(x[:, 0]), []
        for t in range(x.shape[1]):
            h = g[:, t] * h + x[:, t]
            ys.append(h)
        y = torch.stack(ys, 1)
        return (y, y.sum(-1, keepdim=True)) if len(self.outputs) == 2 else y


def test_scan_layer_shapes_follow_inputs_heads_and_outputs():
    op = FakeScan(d=5, heads=3, two_outputs=True)
    layer = ScanLayer(16, op)
    assert layer.in_proj.out_features == 2 * 3 * 5
    assert layer.out_proj.in_features == 3 * 5 + 3 * 1
    out = layer(torch.randn(2, 7, 16))
    assert out.shape == (2, 7, 16)
    assert op.calls[-1] == ((2, 7, 3, 5), (2, 7, 3, 5), torch.float32)


def test_operator_params_are_registered_and_trained():
    model = build_model(lambda: FakeScan(d=4), 10, ModelConfig(width=8, layers=2))
    names = dict(model.named_parameters())
    assert "blocks.0.scan.op.bias" in names and "blocks.1.scan.op.bias" in names
    tokens = torch.randint(0, 10, (2, 6))
    model(tokens).sum().backward()
    assert names["blocks.1.scan.op.bias"].grad.abs().sum() > 0
    opt_params = {id(p) for g in make_optimizer(model, TrainConfig()).param_groups
                  for p in g["params"]}
    assert id(names["blocks.0.scan.op.bias"]) in opt_params


def test_gate_and_mlp_are_optional():
    small = build_model(lambda: FakeScan(d=4), 10, ModelConfig(width=8, layers=1, gate=False,
                                                                mlp_ratio=0))
    full = build_model(lambda: FakeScan(d=4), 10, ModelConfig(width=8, layers=1))
    assert small.blocks[0].gate is None and small.blocks[0].mlp is None
    extra = sum(p.numel() for p in full.parameters()) - sum(p.numel() for p in small.parameters())
    assert extra == (8 * 8 + 8) + 8 + (8 * 32 + 32) + (32 * 8 + 8)
    with pytest.raises(ValueError, match="width and layers"):
        ModelConfig(width=0)


def test_masked_loss_counts_only_scored_positions():
    logits = torch.tensor([[[2.0, 0.0], [0.0, 3.0], [5.0, 0.0]]])
    targets = torch.tensor([[0, 0, -100]])
    loss, n, correct = masked_loss_sums(logits, targets)
    expected = -torch.log_softmax(logits[0, 0], -1)[0] - torch.log_softmax(logits[0, 1], -1)[0]
    assert torch.allclose(loss, expected) and int(n) == 2 and int(correct) == 1


def test_tiny_model_overfits_a_fixed_batch():
    torch.manual_seed(0)
    task = make_task("s5", train_len="6")
    batch = task.batch(0, 0, 8)
    model = build_model(lambda: FakeScan(d=16), task.vocab_size,
                        ModelConfig(width=48, layers=1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        loss, n, _ = masked_loss_sums(model(batch.inputs), batch.targets)
        opt.zero_grad()
        (loss / n).backward()
        opt.step()
    _, n, correct = masked_loss_sums(model(batch.inputs), batch.targets)
    assert int(correct) == int(n) == 48


@pytest.mark.parametrize("spec", ["gla", "selective_ssm", "pd_ssm", "mlstm"])
def test_model_around_zoo_specs_trains(spec):
    """Real compiled operators: shapes come from the module, and every param gets a gradient."""
    import madc

    op = madc.load(f"ops/{spec}.scan", backend="chunked")
    model = build_model(f"ops/{spec}.scan", 12, ModelConfig(width=16, layers=1,
                                                            backend="chunked"))
    layer = model.blocks[0].scan
    heads = (op.heads,) if op.heads else ()
    assert layer.in_shapes == {n: heads + tuple(s) for n, s in op.inputs.items()}
    logits = model(torch.randint(0, 12, (2, 9)))
    assert logits.shape == (2, 9, 12) and torch.isfinite(logits).all()
    logits.logsumexp(-1).sum().backward()
    op_params = [(n, p) for n, p in model.named_parameters() if n.startswith("blocks.0.scan.op.")]
    assert [n.split(".")[-1] for n, _ in op_params] == [n for n, _ in op.named_parameters()]
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, missing


def test_input_activations_bound_operator_inputs():
    op = FakeScan(d=4)
    seen = {}

    def spy(x, a):
        seen["a"] = a
        return FakeScan.forward(op, x, a)

    op.forward = spy
    layer = ScanLayer(8, op, input_acts={"a": "logsigmoid/16"})
    layer(torch.randn(3, 5, 8) * 10)
    assert (seen["a"] <= 0).all() and (seen["a"] >= -10 / 16 - 1).all()
    from madc.train.model import ModelError

    with pytest.raises(ModelError, match="the operator's inputs are x, a"):
        ScanLayer(8, FakeScan(d=4), input_acts={"g": "sigmoid"})
    with pytest.raises(ModelError, match="is not one of"):
        ModelConfig(input_acts={"a": "cube"})
    with pytest.raises(ModelError, match="not a number"):
        ModelConfig(input_acts={"a": "sigmoid/x"})


def test_short_conv_is_causal():
    torch.manual_seed(0)
    model = build_model(lambda: FakeScan(d=4), 10, ModelConfig(width=8, layers=1, conv=3))
    a = torch.randint(0, 10, (1, 7))
    b = a.clone()
    b[0, 4] = (a[0, 4] + 1) % 10
    la, lb = model(a), model(b)
    assert torch.equal(la[0, :4], lb[0, :4]) and not torch.allclose(la[0, 4], lb[0, 4])
    assert model.blocks[0].conv.weight.shape == (8, 1, 3)
