"""`madc train` and `madc sweep`: argument parsing and the user-facing messages.

`madc/cli.py` wires `add_train_arguments`/`main_train` and `add_sweep_arguments`/`main_sweep`
into the `madc` command; `python -m madc.train.cli train|sweep ...` runs them standalone (what
`torchrun` calls for multi-GPU runs). User mistakes print one `madc train: error: ...` line and
return 2; nothing here prints a traceback for them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from madc.train.model import ModelError
from madc.train.tasks import TaskError, make_task, task_names


class UsageError(ValueError):
    """A command-line mistake (bad option value, missing file)."""


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", required=True, help=f"one of: {', '.join(task_names())}")
    p.add_argument("--task-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="override a task setting, e.g. train_len=32 (see docs/training.md)")
    p.add_argument("--steps", type=int, default=300, help="optimiser steps (default 300)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="auto: cuda when available")
    p.add_argument("--backend", default="auto", choices=["auto", "reference", "chunked", "triton"],
                   help="operator backend passed to madc.load")
    p.add_argument("--dim", action="append", default=[], metavar="NAME=VALUE",
                   help="override a dim of the spec (repeatable)")
    g = p.add_argument_group("model")
    g.add_argument("--layers", type=int, default=2)
    g.add_argument("--width", type=int, default=64)
    g.add_argument("--mlp-ratio", type=int, default=4, help="0 drops the MLP")
    g.add_argument("--no-gate", action="store_true", help="drop the sigmoid output gate")
    g.add_argument("--conv", type=int, default=0, metavar="K",
                   help="short causal depthwise conv of kernel K before the scan (0: none)")
    g.add_argument("--scan-dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    g.add_argument("--input-act", action="append", default=[], metavar="INPUT=ACT[/DIV]",
                   help="activation between the projection and an operator input, e.g. "
                   "g=logsigmoid/16 (acts: logsigmoid sigmoid softplus neg_softplus silu tanh "
                   "relu elu1 l2norm)")
    g = p.add_argument_group("optimisation")
    g.add_argument("--lr", type=float, default=3e-3)
    g.add_argument("--batch-size", type=int, default=32, help="global batch (all ranks)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--warmup", type=int, default=None, help="steps (default 5%% of --steps)")
    g.add_argument("--weight-decay", type=float, default=0.1)
    g.add_argument("--grad-clip", type=float, default=1.0)
    g.add_argument("--eval-every", type=int, default=100)
    g.add_argument("--eval-batches", type=int, default=4)
    g.add_argument("--ckpt-every", type=int, default=100)
    g.add_argument("--no-amp", action="store_true", help="no bf16 autocast on CUDA")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `madc train FILE --task NAME ...`."""
    parser.add_argument("file", metavar="FILE", help="a .scan spec")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="output folder (default runs/train/<spec>_<task>)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from DIR/checkpoint.pt when it exists")
    _add_common(parser)


def add_sweep_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `madc sweep SPEC... --task NAME ...`."""
    parser.add_argument("files", nargs="+", metavar="SPEC", help=".scan specs to compare")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="output folder (default runs/sweep/<task>)")
    _add_common(parser)


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{what} expects KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def build_configs(args: argparse.Namespace):
    """(task, ModelConfig, TrainConfig) from parsed arguments; raises UsageError/TaskError."""
    import torch

    from madc.train.loop import TrainConfig
    from madc.train.model import ModelConfig

    task = make_task(args.task, **_pairs(args.task_arg, "--task-arg"))
    dims = _pairs(args.dim, "--dim")
    try:
        dims = {k: int(v) for k, v in dims.items()}
    except ValueError as e:
        raise UsageError(f"--dim values must be integers: {e}") from e
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: CUDA is not available on this machine")
    for name in ("steps", "batch_size", "eval_every", "eval_batches", "ckpt_every"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1, "
                             f"got {getattr(args, name)}")
    try:
        model = ModelConfig(width=args.width, layers=args.layers, mlp_ratio=args.mlp_ratio,
                            gate=not args.no_gate, scan_dtype=args.scan_dtype,
                            backend=args.backend, dims=dims,
                            input_acts=_pairs(args.input_act, "--input-act"), conv=args.conv)
    except ValueError as e:
        raise UsageError(str(e)) from e
    train = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                        weight_decay=args.weight_decay, warmup=args.warmup,
                        grad_clip=args.grad_clip, eval_every=args.eval_every,
                        eval_batches=args.eval_batches, ckpt_every=args.ckpt_every,
                        seed=args.seed, device=device, amp=not args.no_amp,
                        progress=not args.no_progress)
    return task, model, train


def _check_spec(path: str) -> None:
    if not Path(path).is_file():
        raise UsageError(f"spec file {path!r} does not exist")


def format_summary(summary: dict) -> str:
    """A few human lines: final accuracy per eval set, loss, speed, where files went."""
    lines = [f"{summary['spec']} on {summary['task']}: {summary['params']:,} params, "
             f"{summary['steps']} steps, {summary['wall_s']:.1f} s, "
             f"{summary['tokens_per_s']:,.0f} tokens/s"]
    lines.append(f"  final train loss {summary['final_train_loss']:.4f}")
    for name, v in summary["eval"].items():
        lines.append(f"  eval {name:>12}: loss {v['loss']:.4f}  acc {v['acc']:.4f}")
    out = summary["out"]
    lines.append(f"  curves: {out}/curves.png  metrics: {out}/metrics.json, {out}/train.csv, "
                 f"{out}/eval.csv  checkpoint: {out}/checkpoint.pt")
    return "\n".join(lines)


def main_train(args: argparse.Namespace) -> int:
    """`madc train`: returns 0 on success, 2 on a usage error."""
    from madc.train.loop import TrainingDiverged, train

    try:
        _check_spec(args.file)
        task, model_cfg, cfg = build_configs(args)
    except (UsageError, TaskError, ModelError) as e:
        print(f"madc train: error: {e}", file=sys.stderr)
        return 2
    out = args.out or f"runs/train/{Path(args.file).stem}_{args.task}"
    try:
        summary = train(args.file, task, model_cfg, cfg, out, resume=args.resume,
                        spec_name=Path(args.file).name)
    except (UsageError, TaskError, ModelError) as e:
        print(f"madc train: error: {e}", file=sys.stderr)
        return 2
    except TrainingDiverged as e:
        print(f"madc train: diverged: {e}", file=sys.stderr)
        return 1
    if _is_main_rank():
        print(format_summary(summary))
    return 0


def main_sweep(args: argparse.Namespace) -> int:
    """`madc sweep`: returns 0 when every spec trained, 1 when one failed, 2 on usage errors."""
    from madc.train.sweep import sweep

    try:
        for f in args.files:
            _check_spec(f)
        task, model_cfg, cfg = build_configs(args)
    except (UsageError, TaskError, ModelError) as e:
        print(f"madc sweep: error: {e}", file=sys.stderr)
        return 2
    out = args.out or f"runs/sweep/{args.task}"
    results = sweep(args.files, task, model_cfg, cfg, out)
    return 0 if all(r.get("error") is None for r in results) else 1


def _is_main_rank() -> bool:
    import torch.distributed as dist

    return not dist.is_initialized() or dist.get_rank() == 0


def main(argv: list[str] | None = None) -> int:
    """Standalone entry: `python -m madc.train.cli train|sweep ...` (used with torchrun)."""
    parser = argparse.ArgumentParser(prog="madc")
    sub = parser.add_subparsers(dest="command", required=True)
    add_train_arguments(sub.add_parser("train", help="train a model around one spec"))
    add_sweep_arguments(sub.add_parser("sweep", help="compare specs on one task"))
    args = parser.parse_args(argv)
    try:
        return main_train(args) if args.command == "train" else main_sweep(args)
    except Exception as exc:  # noqa: BLE001 - render spec errors like `madc` does
        from madc.errors import CompileError

        if isinstance(exc, CompileError):
            print(exc.render(), file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
