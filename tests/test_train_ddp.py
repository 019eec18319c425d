"""DistributedDataParallel on the CPU (gloo, 2 processes) equals one process on the
concatenated batch: the gradients of one step, and the losses of a short training run."""

from __future__ import annotations

import csv
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from test_train_model import FakeScan

from madc.train.loop import TrainConfig, batch_loss, setup_distributed, train
from madc.train.model import ModelConfig, build_model
from madc.train.tasks import make_task

MODEL = ModelConfig(width=16, layers=2)
GLOBAL_BATCH = 6


def _task():
    # In-context recall scores a varying number of positions per row, so the two shards hold
    # different counts: exactly where a naive per-rank mean would disagree with the global one.
    return make_task("mad_recall", kv_vocab="8", seq_len="12", train_examples="0")


def _factory():
    return FakeScan(d=6, heads=2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str, what: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world),
                      RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    d = setup_distributed("cpu")
    try:
        if what == "grads":
            torch.manual_seed(0)
            model = build_model(_factory, _task().vocab_size, MODEL)
            ddp = torch.nn.parallel.DistributedDataParallel(model)
            batch = _task().batch(0, 0, GLOBAL_BATCH)
            n_global = int((batch.targets != -100).sum())
            loss, *_ = batch_loss(ddp, batch.shard(d.rank, d.world), n_global, d.world,
                                  d.device, amp=False)
            loss.backward()
            torch.save({n: p.grad for n, p in model.named_parameters()},
                       os.path.join(out, f"grads{rank}.pt"))
        else:
            cfg = TrainConfig(steps=6, batch_size=GLOBAL_BATCH, eval_every=6, eval_batches=1,
                              progress=False, plots=False)
            train(_factory, _task(), MODEL, cfg, out)
    finally:
        # Both ranks finish their work before either tears gloo down: a rank that leaves
        # early can make the other abort (SIGABRT) on a reset connection.
        dist.barrier()
        dist.destroy_process_group()


def _spawn(tmp_path, what):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path), what), nprocs=2, join=True)


@pytest.mark.timeout(120)
def test_ddp_gradients_equal_one_process_on_the_whole_batch(tmp_path):
    _spawn(tmp_path, "grads")
    torch.manual_seed(0)
    model = build_model(_factory, _task().vocab_size, MODEL)
    batch = _task().batch(0, 0, GLOBAL_BATCH)
    counts = [int((batch.shard(r, 2).targets != -100).sum()) for r in range(2)]
    assert counts[0] != counts[1] and min(counts) > 0
    loss, *_ = batch_loss(model, batch, int((batch.targets != -100).sum()), 1,
                          torch.device("cpu"), amp=False)
    loss.backward()
    for rank in range(2):
        grads = torch.load(tmp_path / f"grads{rank}.pt")
        for name, p in model.named_parameters():
            torch.testing.assert_close(grads[name], p.grad, rtol=1e-5, atol=1e-7,
                                       msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.timeout(120)
def test_ddp_training_run_matches_one_process(tmp_path):
    _spawn(tmp_path / "ddp", "train")
    cfg = TrainConfig(steps=6, batch_size=GLOBAL_BATCH, eval_every=6, eval_batches=1,
                      progress=False, plots=False)
    train(_factory, _task(), MODEL, cfg, tmp_path / "one")
    with open(tmp_path / "ddp" / "train.csv") as f:
        ddp_rows = list(csv.DictReader(f))
    with open(tmp_path / "one" / "train.csv") as f:
        one_rows = list(csv.DictReader(f))
    assert len(ddp_rows) == len(one_rows) == 6
    for a, b in zip(ddp_rows, one_rows):
        assert float(a["loss"]) == pytest.approx(float(b["loss"]), rel=1e-5)
        assert float(a["acc"]) == pytest.approx(float(b["acc"]), abs=1e-9)
