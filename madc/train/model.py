"""The model `madc train` builds around a compiled scan operator.

    tokens -> embedding -> L x [x + gate(ScanLayer([conv](RMSNorm(x))));  x + MLP(RMSNorm(x))]
           -> RMSNorm -> linear head

`ScanLayer` reads everything it needs from the operator module (`docs/runtime.md`):
`inputs` (name -> per-token shape), `heads` (int or None) and `outputs`. One linear map
projects the model width to every input (`[B, T, (H,) *shape]`), the operator runs, and one
linear map projects its flattened outputs back to the width. Specs declare nothing about the
model; the operator is a submodule, so its learned params train with the rest.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

#: Activations that can be put between a projection and an operator input (`--input-act`).
#: Some specs expect a bounded input: GLA's `g` is a log-decay, fed `logsigmoid/16` in fla.
INPUT_ACTS = {
    "logsigmoid": F.logsigmoid, "sigmoid": torch.sigmoid, "softplus": F.softplus,
    "neg_softplus": lambda x: -F.softplus(x), "silu": F.silu, "tanh": torch.tanh,
    "relu": torch.relu, "elu1": lambda x: F.elu(x) + 1, "l2norm": lambda x: F.normalize(x, dim=-1),
}


class ModelError(ValueError):
    """A model setting the user got wrong (reported without a traceback)."""


def parse_input_act(text: str) -> tuple[str, float]:
    """`"logsigmoid/16"` -> ("logsigmoid", 16.0): an activation, optionally divided by a
    number. Raises ModelError naming the valid activations."""
    name, _, div = text.partition("/")
    if name not in INPUT_ACTS:
        raise ModelError(f"input activation {name!r} is not one of {', '.join(INPUT_ACTS)}")
    try:
        scale = float(div) if div else 1.0
    except ValueError as e:
        raise ModelError(f"input activation {text!r}: {div!r} is not a number") from e
    if scale == 0:
        raise ModelError(f"input activation {text!r}: cannot divide by 0")
    return name, scale


@dataclass(frozen=True)
class ModelConfig:
    """Model settings. `scan_dtype` is the dtype the operator runs in (the rest of the model
    follows autocast); `dims` overrides the spec's dims; `backend` is passed to `madc.load`."""

    width: int = 64
    layers: int = 2
    mlp_ratio: int = 4
    gate: bool = True
    scan_dtype: str = "float32"
    backend: str = "auto"
    dims: dict = field(default_factory=dict)
    input_acts: dict = field(default_factory=dict)
    conv: int = 0

    def __post_init__(self):
        if self.conv < 0:
            raise ModelError(f"model: conv (a kernel size) must be >= 0, got {self.conv}")
        for act in self.input_acts.values():
            parse_input_act(act)
        if self.width < 1 or self.layers < 1 or self.mlp_ratio < 0:
            raise ModelError("model: width and layers must be >= 1 and mlp_ratio >= 0, got "
                             f"width={self.width}, layers={self.layers}, "
                             f"mlp_ratio={self.mlp_ratio}")
        if self.scan_dtype not in _DTYPES:
            raise ModelError(f"model: scan_dtype must be one of {list(_DTYPES)}, "
                             f"got {self.scan_dtype!r}")

    def to_dict(self) -> dict:
        """Plain-data form (for checkpoints and metrics.json)."""
        return asdict(self)


def _numel(shape) -> int:
    return math.prod(int(s) for s in shape)


class ScanLayer(nn.Module):
    """Width -> operator inputs -> operator -> width, for any operator module with
    `inputs`/`heads`/`outputs` (see module docstring)."""

    def __init__(self, width: int, operator: nn.Module, scan_dtype: torch.dtype = torch.float32,
                 device: torch.device | str | None = None, input_acts: dict | None = None):
        super().__init__()
        self.op = operator
        unknown = set(input_acts or {}) - set(operator.inputs)
        if unknown:
            raise ModelError(f"input activation for {', '.join(sorted(unknown))}: the operator's "
                             f"inputs are {', '.join(operator.inputs)}")
        self.acts = {k: parse_input_act(v) for k, v in (input_acts or {}).items()}
        self.heads = operator.heads
        self.scan_dtype = scan_dtype
        lead = () if self.heads is None else (int(self.heads),)
        self.in_shapes = {name: lead + tuple(int(s) for s in shape)
                          for name, shape in operator.inputs.items()}
        sizes = [_numel(s) for s in self.in_shapes.values()]
        self.in_proj = nn.Linear(width, sum(sizes), device=device)
        self.splits = sizes
        out_size = self._probe_output_size(device)
        self.out_proj = nn.Linear(out_size, width, device=device)

    def _operator_inputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        b, t = x.shape[:2]
        parts = self.in_proj(x).to(self.scan_dtype).split(self.splits, dim=-1)
        out = {}
        for (name, shape), p in zip(self.in_shapes.items(), parts):
            if name in self.acts:
                act, scale = self.acts[name]
                p = INPUT_ACTS[act](p) / scale
            out[name] = p.reshape(b, t, *shape).contiguous()
        return out

    @torch.no_grad()
    def _probe_output_size(self, device) -> int:
        """Run the operator once on a 1x2 input to learn the flattened output width."""
        x = torch.randn(1, 2, self.in_proj.in_features, device=device)
        return self._flat_outputs(self._call(x)).shape[-1]

    def _call(self, x: torch.Tensor):
        inputs = self._operator_inputs(x)
        with torch.autocast(x.device.type, enabled=False):
            return self.op(**inputs)

    @staticmethod
    def _flat_outputs(out) -> torch.Tensor:
        outs = out if isinstance(out, tuple) else (out,)
        return torch.cat([o.flatten(2) for o in outs], dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, T, width] -> [B, T, width]."""
        y = self._flat_outputs(self._call(x))
        return self.out_proj(y.to(x.dtype))


class Block(nn.Module):
    """Pre-norm residual block: scan layer (optionally gated by sigmoid(W x)), then an MLP."""

    def __init__(self, width: int, operator: nn.Module, cfg: ModelConfig, device=None):
        super().__init__()
        self.norm1 = nn.RMSNorm(width, device=device)
        # Optional short causal depthwise convolution before the projections (as Mamba and
        # flash-linear-attention layers use): it gives the layer a cheap token shift.
        self.conv = None
        if cfg.conv > 0:
            self.conv = nn.Conv1d(width, width, cfg.conv, groups=width, padding=cfg.conv - 1,
                                  device=device)
        self.scan = ScanLayer(width, operator, _DTYPES[cfg.scan_dtype], device, cfg.input_acts)
        self.gate = nn.Linear(width, width, device=device) if cfg.gate else None
        self.mlp = None
        if cfg.mlp_ratio > 0:
            self.norm2 = nn.RMSNorm(width, device=device)
            self.mlp = nn.Sequential(nn.Linear(width, cfg.mlp_ratio * width, device=device),
                                     nn.GELU(),
                                     nn.Linear(cfg.mlp_ratio * width, width, device=device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, T, width] -> [B, T, width]."""
        h = self.norm1(x)
        u = h
        if self.conv is not None:
            u = self.conv(h.transpose(1, 2))[..., : h.shape[1]].transpose(1, 2)
        y = self.scan(u)
        if self.gate is not None:
            y = y * torch.sigmoid(self.gate(h))
        x = x + y
        if self.mlp is not None:
            x = x + self.mlp(self.norm2(x))
        return x


class ScanLM(nn.Module):
    """Embedding -> blocks -> norm -> head: logits `[B, T, vocab]` for token ids `[B, T]`."""

    def __init__(self, vocab_size: int, cfg: ModelConfig,
                 make_operator: Callable[[], nn.Module], device=None):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(vocab_size, cfg.width, device=device)
        nn.init.normal_(self.embed.weight, std=0.02)
        self.blocks = nn.ModuleList(
            Block(cfg.width, _on(make_operator(), device), cfg, device)
            for _ in range(cfg.layers))
        self.norm = nn.RMSNorm(cfg.width, device=device)
        self.head = nn.Linear(cfg.width, vocab_size, device=device)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens: [B, T] int64 -> logits [B, T, vocab]."""
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


def _on(module: nn.Module, device) -> nn.Module:
    return module if device is None else module.to(device)


def spec_operator_factory(spec: str, backend: str = "auto",
                          dims: dict | None = None) -> Callable[[], nn.Module]:
    """A factory of fresh operator modules for `spec` (path or source) via `madc.load`."""
    import madc

    dims = dict(dims or {})

    def make() -> nn.Module:
        return madc.load(spec, backend=backend, **dims)

    return make


def build_model(spec_or_factory, vocab_size: int, cfg: ModelConfig,
                device: str | torch.device = "cpu") -> ScanLM:
    """Build a `ScanLM` on `device`. `spec_or_factory` is a spec path/source for `madc.load`
    (with `cfg.backend` and `cfg.dims`) or a zero-argument callable returning an operator."""
    if callable(spec_or_factory):
        factory = spec_or_factory
    else:
        factory = spec_operator_factory(str(spec_or_factory), cfg.backend, cfg.dims)
    return ScanLM(vocab_size, cfg, factory, device=torch.device(device))


def masked_loss_sums(logits: torch.Tensor, targets: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(sum of cross-entropy over scored positions, number scored, number correct)."""
    flat_t = targets.reshape(-1)
    flat_l = logits.reshape(-1, logits.shape[-1]).float()
    loss = F.cross_entropy(flat_l, flat_t, ignore_index=-100, reduction="sum")
    scored = flat_t != -100
    correct = ((flat_l.argmax(-1) == flat_t) & scored).sum()
    return loss, scored.sum(), correct
