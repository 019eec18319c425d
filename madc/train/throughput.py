"""Training throughput of one model with different operator backends (tokens per second).

    python -m madc.train.throughput ops/gla.scan --task mqar --backends triton,reference

Each backend gets the same model (same seed, same width/layers), the same batches and the
same optimiser; after `--warmup` steps (compilation, autotuning) the next `--steps` training
steps are timed with CUDA synchronisation. Prints a table and writes `throughput.json`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from madc.train.loop import TrainConfig, batch_loss, make_optimizer
from madc.train.model import ModelConfig, build_model
from madc.train.tasks import Task, make_task


def measure(spec: str, task: Task, model_cfg: ModelConfig, batch_size: int, steps: int,
            warmup: int, device: str, seed: int = 0) -> dict:
    """Tokens/s and ms/step of `steps` timed training steps (forward, backward, AdamW)."""
    torch.manual_seed(seed)
    dev = torch.device(device)
    model = build_model(spec, task.vocab_size, model_cfg, dev)
    opt = make_optimizer(model, TrainConfig(lr=1e-3))
    amp = dev.type == "cuda"

    def step(i: int) -> int:
        batch = task.batch(i, seed, batch_size)
        n = int((batch.targets != -100).sum())
        loss, *_ = batch_loss(model, batch, n, 1, dev, amp)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return batch.inputs.numel()

    for i in range(warmup):
        step(i)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    t0, tokens = time.perf_counter(), 0
    for i in range(warmup, warmup + steps):
        tokens += step(i)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    wall = time.perf_counter() - t0
    return {"backend": model_cfg.backend, "tokens_per_s": tokens / wall,
            "ms_per_step": 1000 * wall / steps, "steps": steps, "batch_size": batch_size}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry (see the module docstring)."""
    p = argparse.ArgumentParser(prog="python -m madc.train.throughput")
    p.add_argument("spec")
    p.add_argument("--task", default="mqar")
    p.add_argument("--task-arg", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--backends", default="triton,reference")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", default="runs/throughput")
    args = p.parse_args(argv)
    task = make_task(args.task, **dict(a.split("=", 1) for a in args.task_arg))
    rows = []
    for backend in args.backends.split(","):
        cfg = ModelConfig(width=args.width, layers=args.layers, backend=backend)
        rows.append(measure(args.spec, task, cfg, args.batch_size, args.steps, args.warmup,
                            args.device))
        print(f"{backend:>10}: {rows[-1]['tokens_per_s']:12,.0f} tokens/s  "
              f"{rows[-1]['ms_per_step']:9.2f} ms/step", flush=True)
    base = rows[-1]["tokens_per_s"]
    for r in rows:
        print(f"{r['backend']:>10}: {r['tokens_per_s'] / base:8.2f}x {rows[-1]['backend']}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "throughput.json").write_text(json.dumps(
        {"spec": args.spec, "task": args.task, "device": args.device, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
