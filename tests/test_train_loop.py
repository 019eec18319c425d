"""The training loop: exact resume, schedule, metrics files, CLI errors."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch
from test_train_model import FakeScan

from madc.train.cli import main as train_cli
from madc.train.loop import TrainConfig, make_scheduler, train
from madc.train.model import ModelConfig
from madc.train.tasks import make_task

TASK = {"name": "s5", "train_len": "8", "test_lens": "12"}
MODEL = ModelConfig(width=16, layers=1)


def _cfg(**kw) -> TrainConfig:
    base = dict(steps=8, batch_size=4, eval_every=4, eval_batches=1, ckpt_every=3, lr=1e-2,
                progress=False, plots=False)
    return TrainConfig(**{**base, **kw})


def _task():
    return make_task(TASK["name"], train_len=TASK["train_len"], test_lens=TASK["test_lens"])


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_resume_gives_the_same_losses_as_not_stopping(tmp_path):
    full = train(lambda: FakeScan(8), _task(), MODEL, _cfg(), tmp_path / "full")
    train(lambda: FakeScan(8), _task(), MODEL, _cfg(stop_after=5), tmp_path / "cut")
    assert len(_rows(tmp_path / "cut" / "train.csv")) == 5
    resumed = train(lambda: FakeScan(8), _task(), MODEL, _cfg(), tmp_path / "cut", resume=True)
    a, b = _rows(tmp_path / "full" / "train.csv"), _rows(tmp_path / "cut" / "train.csv")
    assert [r["step"] for r in b] == [str(i) for i in range(1, 9)]
    for key in ("loss", "acc", "lr", "grad_norm"):
        assert [r[key] for r in a] == [r[key] for r in b], key
    assert _rows(tmp_path / "full" / "eval.csv") == _rows(tmp_path / "cut" / "eval.csv")
    assert full["eval"] == resumed["eval"]


def test_resume_refuses_a_different_setup(tmp_path):
    train(lambda: FakeScan(8), _task(), MODEL, _cfg(stop_after=2), tmp_path)
    with pytest.raises(ValueError, match="seed"):
        train(lambda: FakeScan(8), _task(), MODEL, _cfg(seed=1), tmp_path, resume=True)


def test_metrics_files_and_curves(tmp_path):
    summary = train(lambda: FakeScan(8), _task(), MODEL, _cfg(plots=True), tmp_path)
    rows = _rows(tmp_path / "train.csv")
    assert len(rows) == 8 and all(float(r["tokens_per_s"]) > 0 for r in rows)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["summary"]["final_train_loss"] == pytest.approx(float(rows[-1]["loss"]))
    assert [e["step"] for e in metrics["eval"]] == [4, 8]
    assert set(metrics["eval"][-1]["sets"]) == {"T8", "T12", "all"}
    assert summary["final_eval_acc"] == metrics["eval"][-1]["sets"]["all"]["acc"]
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_warmup_then_cosine_schedule():
    cfg = TrainConfig(steps=100, warmup=10, lr=1.0, min_lr_ratio=0.1)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    sched = make_scheduler(opt, cfg)
    lrs = []
    for _ in range(100):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    mid = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 45 / 90))
    assert lrs[55] == pytest.approx(mid)
    assert lrs[99] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 89 / 90)))


def test_loss_decreases_on_a_learnable_task(tmp_path):
    task = make_task("mad_memorization", kv_vocab="16", seq_len="8", train_examples="0")
    summary = train(lambda: FakeScan(8), task, ModelConfig(width=32, layers=1),
                    _cfg(steps=120, batch_size=16, lr=1e-2, eval_every=120), tmp_path)
    assert summary["final_eval_acc"] > 0.9


@pytest.mark.parametrize("argv,message", [
    (["train", "missing.scan", "--task", "s5"], "does not exist"),
    (["train", "{spec}", "--task", "nope"], "unknown task 'nope'"),
    (["train", "{spec}", "--task", "s5", "--dim", "D"], "--dim expects KEY=VALUE"),
    (["train", "{spec}", "--task", "s5", "--dim", "D=x"], "must be integers"),
    (["train", "{spec}", "--task", "s5", "--steps", "0"], "--steps must be >= 1"),
    (["train", "{spec}", "--task", "s5", "--width", "0"], "width and layers"),
    (["train", "{spec}", "--task", "s5", "--task-arg", "train_len=a"], "cannot read 'a'"),
    (["sweep", "{spec}", "missing.scan", "--task", "s5"], "does not exist"),
])
def test_cli_user_mistakes_are_one_line_errors(tmp_path, capsys, argv, message):
    spec = tmp_path / "op.scan"
    spec.write_text("scan op\n")
    code = train_cli([a.format(spec=spec) for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


def test_divergence_stops_with_a_clear_error(tmp_path):
    from madc.train.loop import TrainingDiverged

    class Exploding(FakeScan):
        def forward(self, x, a):
            return FakeScan.forward(self, x, a) * float("inf")

    with pytest.raises(TrainingDiverged, match="loss is nan at step 1"):
        train(lambda: Exploding(8), _task(), MODEL, _cfg(), tmp_path)


def test_cli_train_and_sweep_on_zoo_specs(tmp_path, capsys):
    common = ["--task", "s5", "--task-arg", "train_len=6", "--task-arg", "test_lens=9",
              "--steps", "3", "--batch-size", "4", "--width", "16", "--layers", "1",
              "--eval-every", "3", "--eval-batches", "1", "--backend", "chunked",
              "--no-progress", "--device", "cpu"]
    out = tmp_path / "train"
    assert train_cli(["train", "ops/hgrn.scan", *common, "--out", str(out)]) == 0
    assert "hgrn.scan on s5" in capsys.readouterr().out
    assert len(_rows(out / "train.csv")) == 3 and (out / "curves.png").exists()
    assert train_cli(["train", "ops/hgrn.scan", *common, "--steps", "5", "--out", str(out),
                      "--resume"]) == 0
    assert [r["step"] for r in _rows(out / "train.csv")] == ["1", "2", "3", "4", "5"]

    bad = tmp_path / "bad.scan"
    bad.write_text("scan bad\nstate h : [Q]\n")
    sweep_out = tmp_path / "sweep"
    code = train_cli(["sweep", "ops/hgrn.scan", str(bad), *common, "--out", str(sweep_out)])
    assert code == 1
    table = (sweep_out / "leaderboard.md").read_text()
    assert "| 1 | hgrn |" in table and "| - | bad | - | failed:" in table
    results = json.loads((sweep_out / "leaderboard.json").read_text())
    assert results[0]["final_eval_acc"] == pytest.approx(
        json.loads((sweep_out / "hgrn" / "metrics.json").read_text())["summary"]["final_eval_acc"])
    assert (sweep_out / "comparison.png").read_bytes()[:4] == b"\x89PNG"
