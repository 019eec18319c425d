"""`madc sweep`: several specs, one task, the same budget and seeds; a leaderboard and a plot."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from madc.train.cli import format_summary
from madc.train.loop import TrainConfig, train
from madc.train.model import ModelConfig, ModelError
from madc.train.tasks import Task


def _run_names(specs: list[str]) -> list[str]:
    names, seen = [], {}
    for spec in specs:
        stem = Path(spec).stem
        seen[stem] = seen.get(stem, 0) + 1
        names.append(stem if seen[stem] == 1 else f"{stem}_{seen[stem]}")
    return names


def leaderboard(results: list[dict]) -> str:
    """A Markdown table, best final eval accuracy first (failed runs last, with the reason)."""
    ok = sorted((r for r in results if r.get("error") is None),
                key=lambda r: (-(r["final_eval_acc"] or 0.0), r["final_train_loss"]))
    header = ("| rank | spec | params | final eval acc | best eval acc | final train loss "
              "| tokens/s | wall s |\n|---:|---|---:|---:|---:|---:|---:|---:|")
    rows = [f"| {i} | {r['name']} | {r['params']:,} | {r['final_eval_acc']:.4f} "
            f"| {r['best_eval_acc']:.4f} | {r['final_train_loss']:.4f} "
            f"| {r['tokens_per_s']:,.0f} | {r['wall_s']:.1f} |" for i, r in enumerate(ok, 1)]
    rows += [f"| - | {r['name']} | - | failed: {r['error']} | | | | |"
             for r in results if r.get("error") is not None]
    return "\n".join([header, *rows])


def sweep(specs: list[str], task: Task, model_cfg: ModelConfig, cfg: TrainConfig,
          out_dir: str | Path) -> list[dict]:
    """Train every spec with the same settings under `out_dir/<name>/`; write
    `leaderboard.md`, `leaderboard.json` and `comparison.png`; return one result per spec
    (the training summary plus `name`, or `name` and `error` when the spec failed)."""
    from madc.errors import CompileError

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results, logs = [], {}
    for name, spec in zip(_run_names(specs), specs):
        print(f"== {name} ({spec})", flush=True)
        try:
            summary = train(spec, task, model_cfg, cfg, out / name, spec_name=Path(spec).name)
        except ModelError as e:
            print(f"madc sweep: {name}: error: {e}", file=sys.stderr)
            results.append({"name": name, "spec": spec, "error": str(e)})
            continue
        except CompileError as e:
            print(e.render(), file=sys.stderr)
            results.append({"name": name, "spec": spec, "error": e.render().splitlines()[0]})
            continue
        except Exception as e:  # noqa: BLE001 - one broken operator must not end the sweep
            message = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            print(f"madc sweep: {name} failed: {message}", file=sys.stderr)
            results.append({"name": name, "spec": spec, "error": message})
            continue
        print(format_summary(summary), flush=True)
        results.append({"name": name, **summary, "error": None})
        logs[name] = json.loads((out / name / "metrics.json").read_text())
    table = leaderboard(results)
    (out / "leaderboard.md").write_text(
        f"# {task.name}: {cfg.steps} steps, batch {cfg.batch_size}, seed {cfg.seed}\n\n"
        f"{table}\n")
    (out / "leaderboard.json").write_text(json.dumps(results, indent=1))
    if logs and cfg.plots:
        from madc.train.plots import plot_comparison

        plot_comparison(logs, out / "comparison.png", title=f"sweep on {task.name}")
    print(table)
    print(f"leaderboard: {out}/leaderboard.md  plot: {out}/comparison.png")
    return results
