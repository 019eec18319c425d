"""The last step of `make run`: a short CPU training of one zoo spec on one task."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from madc.train.cli import format_summary
from madc.train.loop import TrainConfig, train
from madc.train.model import ModelConfig
from madc.train.tasks import make_task

DEMO_SPEC = "gla.scan"
# Small associative recall: 4 key-value pairs in 32 tokens over a 64-token vocabulary. A
# 2-layer GLA model learns it in a few hundred steps (chance level is 1/32).
DEMO_TASK = {"vocab_size": "64", "train_configs": "32:4", "test_configs": "32:4,64:8"}


def zoo_spec(name: str) -> Path:
    """Path of a spec shipped with madc (`ops/` in a checkout, `madc.zoo` when installed)."""
    return Path(str(importlib.resources.files("madc.zoo") / name))


def demo_train(out_dir: str | Path, steps: int = 250) -> Path:
    """Train a 2-layer GLA model on small MQAR on the CPU (about a minute on 2 cores), print
    the summary and where the curves and metrics went; return `out_dir`."""
    out = Path(out_dir)
    task = make_task("mqar", **DEMO_TASK)
    model = ModelConfig(width=64, layers=2, backend="chunked", dims={"H": 2, "K": 16, "V": 16},
                        input_acts={"g": "logsigmoid/16"}, conv=4)
    cfg = TrainConfig(steps=steps, batch_size=32, lr=3e-3, eval_every=50, eval_batches=2,
                      ckpt_every=steps, device="cpu", progress=True)
    summary = train(zoo_spec(DEMO_SPEC), task, model, cfg, out, spec_name=DEMO_SPEC)
    print(format_summary(summary))
    return out
