"""PNG learning curves (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first


def _smooth(values: list[float], k: int) -> list[float]:
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= k:
            acc -= values[i - k]
        out.append(acc / min(i + 1, k))
    return out


def _save(fig, path: str | Path, title: str) -> Path:
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_run(log: dict, path: str | Path, title: str = "") -> Path:
    """Two panels: training loss (raw and smoothed) with eval loss; eval accuracy per set."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    steps = [r["step"] for r in log["train"]]
    losses = [r["loss"] for r in log["train"]]
    ax_loss.plot(steps, losses, alpha=0.3, color="C0", label="train")
    ax_loss.plot(steps, _smooth(losses, max(1, len(losses) // 50)), color="C0",
                 label="train (smoothed)")
    if log["eval"]:
        ax_loss.plot([e["step"] for e in log["eval"]],
                     [e["sets"]["all"]["loss"] for e in log["eval"]], "o-", color="C1",
                     label="eval")
        for name in log["eval"][-1]["sets"]:
            ax_acc.plot([e["step"] for e in log["eval"]],
                        [e["sets"][name]["acc"] for e in log["eval"]], "o-", label=name,
                        linewidth=2.5 if name == "all" else 1)
    ax_loss.set(xlabel="step", ylabel="loss (scored positions)", yscale="log")
    ax_acc.set(xlabel="step", ylabel="accuracy (scored positions)", ylim=(0, 1.02))
    ax_loss.legend()
    ax_acc.legend(fontsize="small")
    return _save(fig, path, title)


def plot_comparison(logs: dict[str, dict], path: str | Path, title: str = "") -> Path:
    """One line per run: smoothed training loss and overall eval accuracy against step."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    for i, (name, log) in enumerate(logs.items()):
        losses = [r["loss"] for r in log["train"]]
        ax_loss.plot([r["step"] for r in log["train"]],
                     _smooth(losses, max(1, len(losses) // 50)), color=f"C{i}", label=name)
        ax_acc.plot([e["step"] for e in log["eval"]],
                    [e["sets"]["all"]["acc"] for e in log["eval"]], "o-", color=f"C{i}",
                    label=name)
    ax_loss.set(xlabel="step", ylabel="train loss (smoothed)", yscale="log")
    ax_acc.set(xlabel="step", ylabel="eval accuracy", ylim=(0, 1.02))
    ax_loss.legend(fontsize="small")
    ax_acc.legend(fontsize="small")
    return _save(fig, path, title)
