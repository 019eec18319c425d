"""The training loop behind `madc train`: one readable file.

AdamW with linear warmup and cosine decay, gradient clipping, bf16 autocast on CUDA, periodic
evaluation, checkpoint and exact resume, a tqdm bar (loss / accuracy / tokens per second),
metrics as CSV and JSON, PNG learning curves and a final summary. Multi-GPU through `torchrun`
(DistributedDataParallel; gloo on CPU, NCCL on CUDA).

Why resume is exact: a step's batch is a pure function of (seed, step) (see `tasks.py`), and a
checkpoint holds the model, the optimiser, the scheduler, the RNG states and the metrics so
far, so steps s+1.. after a resume repeat what an uninterrupted run computes.

Why DDP equals one process on the whole batch: every rank draws the same global batch and
keeps its own rows; the loss is the sum over scored tokens divided by the *global* number of
scored tokens, times the world size, so DDP's gradient average is the global mean's gradient.
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from madc.train.model import ModelConfig, build_model, masked_loss_sums
from madc.train.tasks import Batch, Task


@dataclass(frozen=True)
class TrainConfig:
    """Loop settings. `batch_size` is the global batch (split across DDP ranks); `warmup` is
    in steps (default: 5% of `steps`)."""

    steps: int = 300
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 0.1
    warmup: int | None = None
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    eval_every: int = 100
    eval_batches: int = 4
    eval_batch_size: int | None = None
    ckpt_every: int = 100
    log_every: int = 10
    seed: int = 0
    device: str = "cpu"
    amp: bool = True
    progress: bool = True
    plots: bool = True
    stop_after: int | None = None  # end this invocation after this step (resume continues)

    def warmup_steps(self) -> int:
        """Warmup length in steps."""
        return self.warmup if self.warmup is not None else max(1, self.steps // 20)


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass
class Dist:
    """This process's place in a (possibly single-process) data-parallel run."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        """True on the rank that writes files and prints."""
        return self.rank == 0


def setup_distributed(device: str) -> Dist:
    """Join the `torchrun` process group when WORLD_SIZE > 1 (NCCL on CUDA, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but CUDA is not available")
    if world == 1:
        return Dist(0, 1, torch.device(device))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device == "cuda" else "gloo")
    dev = torch.device(f"cuda:{local}") if device == "cuda" else torch.device("cpu")
    if device == "cuda":
        torch.cuda.set_device(dev)
    return Dist(dist.get_rank(), dist.get_world_size(), dev)


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; weight decay on matrices only (not on norms, biases or operator vectors)."""
    decay = [p for p in model.parameters() if p.ndim >= 2]
    other = [p for p in model.parameters() if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": other, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95))


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig):
    """Linear warmup to `lr`, then cosine decay to `min_lr_ratio * lr` at `steps`."""
    warm = cfg.warmup_steps()

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = min(1.0, (step - warm) / max(1, cfg.steps - warm))
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def batch_loss(model: nn.Module, batch: Batch, global_scored: int, world: int,
               device: torch.device, amp: bool):
    """Loss whose DDP-averaged gradient is the gradient of the global-batch mean loss.
    Returns (loss, local CE sum, local scored count, local correct count)."""
    x, y = batch.inputs.to(device), batch.targets.to(device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda"):
        logits = model(x)
    ce_sum, n, correct = masked_loss_sums(logits, y)
    return ce_sum * world / max(global_scored, 1), ce_sum.detach(), n, correct


def _all_sum(values: list[float], d: Dist) -> list[float]:
    if d.world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=d.device)
    dist.all_reduce(t)
    return t.tolist()


@torch.no_grad()
def evaluate(model: nn.Module, sets: dict[str, list[Batch]], device: torch.device,
             amp: bool) -> dict[str, dict[str, float]]:
    """Mean loss and accuracy over the scored positions of each eval set (and `all`)."""
    model.eval()
    out, total = {}, [0.0, 0, 0]
    for name, batches in sets.items():
        acc = [0.0, 0, 0]
        for batch in batches:
            _, ce, n, c = batch_loss(model, batch, 1, 1, device, amp)
            acc = [acc[0] + float(ce), acc[1] + int(n), acc[2] + int(c)]
        out[name] = {"loss": acc[0] / max(acc[1], 1), "acc": acc[2] / max(acc[1], 1)}
        total = [t + a for t, a in zip(total, acc)]
    out["all"] = {"loss": total[0] / max(total[1], 1), "acc": total[2] / max(total[1], 1)}
    model.train()
    return out


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, model, opt, sched, step: int, log: dict, meta: dict) -> None:
    """Write the checkpoint atomically (temp file + rename)."""
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(),
                "sched": sched.state_dict(), "step": step, "rng": _rng_state(),
                "log": log, "meta": meta}, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, model, opt, sched, meta: dict, device) -> tuple[int, dict]:
    """Restore a checkpoint written by `save_checkpoint`; returns (step, metrics log)."""
    ckpt = torch.load(path, map_location=device, weights_only=False)
    for key in ("spec", "task", "model", "seed", "batch_size"):
        if ckpt["meta"].get(key) != meta.get(key):
            raise ValueError(f"--resume: checkpoint {path} was made with {key}="
                             f"{ckpt['meta'].get(key)!r}, this run has {meta.get(key)!r}")
    model.load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["opt"])
    sched.load_state_dict(ckpt["sched"])
    _set_rng_state(ckpt["rng"])
    return ckpt["step"], ckpt["log"]


def _write_metrics(out: Path, log: dict, summary: dict | None, meta: dict) -> None:
    with open(out / "train.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "loss", "acc", "lr", "grad_norm", "tokens_per_s"])
        w.writerows([r["step"], r["loss"], r["acc"], r["lr"], r["grad_norm"], r["tokens_per_s"]]
                    for r in log["train"])
    with open(out / "eval.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "set", "loss", "acc"])
        w.writerows([r["step"], name, v["loss"], v["acc"]]
                    for r in log["eval"] for name, v in r["sets"].items())
    tmp = out / "metrics.json.tmp"
    tmp.write_text(json.dumps({"meta": meta, "summary": summary, **log}, indent=1))
    os.replace(tmp, out / "metrics.json")


def train(spec_or_factory, task: Task, model_cfg: ModelConfig, cfg: TrainConfig,
          out_dir: str | Path, resume: bool = False, spec_name: str | None = None) -> dict:
    """Train a `ScanLM` around `spec_or_factory` on `task`; write metrics, curves and the
    checkpoint under `out_dir`; return the summary dict (also in metrics.json)."""
    from tqdm.auto import tqdm

    d = setup_distributed(cfg.device)
    out = Path(out_dir)
    if d.main:
        out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    model = build_model(spec_or_factory, task.vocab_size, model_cfg, d.device)
    n_params = sum(p.numel() for p in model.parameters())
    net = model
    if d.world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=None)
    opt = make_optimizer(model, cfg)
    sched = make_scheduler(opt, cfg)
    meta = {"spec": spec_name or (None if callable(spec_or_factory) else str(spec_or_factory)),
            "task": {"name": task.name, **{k: str(v) for k, v in _task_settings(task).items()}},
            "model": model_cfg.to_dict(), "seed": cfg.seed, "batch_size": cfg.batch_size,
            "train": asdict(cfg), "world_size": d.world, "params": n_params}
    log, step = {"train": [], "eval": []}, 0
    ckpt_path = out / "checkpoint.pt"
    if resume and ckpt_path.exists():
        step, log = load_checkpoint(ckpt_path, model, opt, sched, meta, d.device)
    elif resume and d.main:
        print(f"madc train: no checkpoint at {ckpt_path}; starting from step 0")
    amp = cfg.amp and d.device.type == "cuda"
    eval_sets = task.eval_batches(cfg.seed, cfg.eval_batch_size or cfg.batch_size,
                                  cfg.eval_batches)
    # disable=None: a bar on a terminal, none in a log file (CI), so logs stay readable
    bar = tqdm(total=cfg.steps, initial=step, disable=None if cfg.progress and d.main else True,
               desc=f"{meta['spec'] or 'model'} on {task.name}", dynamic_ncols=True)
    t_start, window = time.perf_counter(), [0, 0.0]
    stop = min(cfg.steps, cfg.stop_after) if cfg.stop_after is not None else cfg.steps
    while step < stop:
        t0 = time.perf_counter()
        batch = task.batch(step, cfg.seed, cfg.batch_size)
        n_global = int((batch.targets != -100).sum())
        loss, ce, n, correct = batch_loss(net, batch.shard(d.rank, d.world), n_global,
                                          d.world, d.device, amp)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = float(nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip))
        opt.step()
        lr = sched.get_last_lr()[0]
        sched.step()
        ce_sum, _, n_correct = _all_sum([float(ce), int(n), int(correct)], d)
        if d.device.type == "cuda":
            torch.cuda.synchronize(d.device)
        window = [window[0] + batch.inputs.numel(), window[1] + time.perf_counter() - t0]
        step += 1
        row = {"step": step, "loss": ce_sum / max(n_global, 1),
               "acc": n_correct / max(n_global, 1), "lr": lr, "grad_norm": grad_norm,
               "tokens_per_s": window[0] / max(window[1], 1e-9)}
        log["train"].append(row)
        if not math.isfinite(row["loss"]):
            bar.close()
            raise TrainingDiverged(
                f"the training loss is {row['loss']} at step {step}; lower --lr, or bound an "
                "operator input that the spec exponentiates (e.g. --input-act g=logsigmoid/16 "
                "for a log-space decay)")
        if step % cfg.log_every == 0 or step == cfg.steps:
            bar.set_postfix(loss=f"{row['loss']:.3f}", acc=f"{row['acc']:.3f}",
                            tok_s=f"{row['tokens_per_s']:.0f}")
            window = [0, 0.0]
        bar.update(1)
        if step % cfg.eval_every == 0 or step == cfg.steps:
            sets = evaluate(model, eval_sets, d.device, amp)
            log["eval"].append({"step": step, "sets": sets})
            if d.main:
                bar.write(f"step {step}: eval loss {sets['all']['loss']:.4f} "
                          f"acc {sets['all']['acc']:.4f}")
        if d.main and (step % cfg.ckpt_every == 0 or step in (cfg.steps, stop)):
            save_checkpoint(ckpt_path, model, opt, sched, step, log, meta)
            _write_metrics(out, log, None, meta)
    bar.close()
    summary = _summary(log, meta, time.perf_counter() - t_start, out)
    if d.main:
        _write_metrics(out, log, summary, meta)
        if cfg.plots:
            from madc.train.plots import plot_run

            plot_run(log, out / "curves.png", title=f"{meta['spec']} on {task.name}")
    return summary


def _task_settings(task: Task) -> dict:
    import dataclasses

    return {f.name: getattr(task, f.name) for f in dataclasses.fields(task)
            if f.name != "corpus"}


def _summary(log: dict, meta: dict, wall: float, out: Path) -> dict:
    last_eval = log["eval"][-1]["sets"] if log["eval"] else {}
    tail = log["train"][-max(1, len(log["train"]) // 10):]
    return {
        "spec": meta["spec"], "task": meta["task"]["name"], "params": meta["params"],
        "steps": log["train"][-1]["step"] if log["train"] else 0,
        "final_train_loss": log["train"][-1]["loss"] if log["train"] else None,
        "eval": last_eval,
        "final_eval_acc": last_eval.get("all", {}).get("acc"),
        "best_eval_acc": max((e["sets"]["all"]["acc"] for e in log["eval"]), default=None),
        "tokens_per_s": sum(r["tokens_per_s"] for r in tail) / max(len(tail), 1),
        "wall_s": wall, "out": str(out),
    }
