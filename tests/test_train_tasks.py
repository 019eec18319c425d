"""Each task's labels against an independent, plain-Python computation."""

from __future__ import annotations

import pytest
import torch

from madc.train.tasks import IGNORE, TaskError, is_validation_file, make_task, task_names


def _rows(batch):
    return zip(batch.inputs.tolist(), batch.targets.tolist())


def test_every_task_is_registered_and_deterministic():
    assert set(task_names()) == {
        "mqar", "s5", "a5", "selective_copy", "mad_recall", "mad_fuzzy_recall",
        "mad_noisy_recall", "mad_selective_copy", "mad_compression", "mad_memorization",
        "charlm"}
    small = {"mad_recall": {"train_examples": "64"}, "mad_noisy_recall": {"train_examples": "64"},
             "mad_fuzzy_recall": {"train_examples": "64"}, "charlm": {"max_bytes": "100000"},
             "mad_compression": {"train_examples": "64"},
             "mad_memorization": {"train_examples": "64"}}
    for name in task_names():
        task = make_task(name, **small.get(name, {}))
        a, b, c = task.batch(3, 1, 4), task.batch(3, 1, 4), task.batch(4, 1, 4)
        assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets), name
        assert not torch.equal(a.inputs, c.inputs), name
        assert a.inputs.shape == a.targets.shape and a.inputs.dtype == torch.long, name
        assert 0 <= int(a.inputs.min()) and int(a.inputs.max()) < task.vocab_size, name
        scored = a.targets[a.targets != IGNORE]
        assert scored.numel() > 0 and int(scored.max()) < task.vocab_size, name


def test_make_task_reports_user_mistakes():
    with pytest.raises(TaskError, match="unknown task 'nope'"):
        make_task("nope")
    with pytest.raises(TaskError, match="no setting 'colour'"):
        make_task("s5", colour="red")
    with pytest.raises(TaskError, match="cannot read 'abc' as int"):
        make_task("s5", train_len="abc")
    with pytest.raises(TaskError, match="too short"):
        make_task("mqar", train_configs="16:8")


def test_mqar_queries_recall_their_value():
    task = make_task("mqar", vocab_size="64", train_configs="32:4,64:8",
                     test_configs="128:16")
    half = 32
    for split in ("train", "T128_kv16"):
        batch = task.sample(torch.Generator().manual_seed(0), 16, split)
        for inputs, targets in _rows(batch):
            pairs = 16 if split != "train" else (4 if len(inputs) == 32 else 8)
            keys, values = inputs[0:2 * pairs:2], inputs[1:2 * pairs:2]
            assert len(set(keys)) == pairs and all(1 <= k < half for k in keys)
            assert all(half <= v < 64 for v in values)
            kv = dict(zip(keys, values))
            queried = [(t, inputs[t], y) for t, y in enumerate(targets) if y != IGNORE]
            assert sorted(q[1] for q in queried) == sorted(keys)
            for t, key, y in queried:
                assert t >= 2 * pairs and y == kv[key]


def _compose(f, g):
    return tuple(f[g[i]] for i in range(len(g)))


def _parity(p):
    seen, cycles = set(), 0
    for i in range(len(p)):
        if i not in seen:
            cycles += 1
            while i not in seen:
                seen.add(i)
                i = p[i]
    return (len(p) - cycles) % 2


@pytest.mark.parametrize("name,order", [("s5", 120), ("a5", 60)])
def test_permutation_labels_are_running_products(name, order):
    task = make_task(name, train_len="8", test_lens="20", bos="false")
    assert task.vocab_size == order == len(set(task.elements))
    if name == "a5":
        assert all(_parity(p) == 0 for p in task.elements)
    assert task.eval_sets() == ("T8", "T20")
    for split, length in (("train", 8), ("T20", 20)):
        batch = task.sample(torch.Generator().manual_seed(1), 8, split)
        assert batch.inputs.shape == (8, length)
        for inputs, targets in _rows(batch):
            prod = tuple(range(5))
            for g, y in zip(inputs, targets):
                prod = _compose(task.elements[g], prod)
                assert task.elements[y] == prod
    with_bos = make_task(name, train_len="8", bos="true")
    assert with_bos.vocab_size == order + 1
    plain = task.sample(torch.Generator().manual_seed(2), 4, "train")
    marked = with_bos.sample(torch.Generator().manual_seed(2), 4, "train")
    assert (marked.inputs[:, 0] == order).all() and (marked.targets[:, 0] == IGNORE).all()
    assert torch.equal(marked.inputs[:, 1:], plain.inputs)
    assert torch.equal(marked.targets[:, 1:], plain.targets)


@pytest.mark.parametrize("name", ["selective_copy", "mad_selective_copy"])
def test_selective_copy_targets_are_data_tokens_in_order(name):
    task = make_task(name, context_len="30", n_tokens="5")
    for inputs, targets in _rows(task.batch(0, 0, 8)):
        context, prompt = inputs[:30], inputs[30:]
        data = [tok for tok in context if tok >= 2]
        assert len(data) == 5 and prompt == [1] * 5
        assert targets[30:] == data and set(targets[:30]) == {IGNORE}


def _check_recall(inputs, targets, kv_vocab):
    kv, seen_scored = {}, 0
    pos = 0
    while pos < len(inputs):
        if inputs[pos] >= kv_vocab:  # a noise unit of two tokens
            assert inputs[pos + 1] >= kv_vocab and targets[pos] == targets[pos + 1] == IGNORE
            pos += 2
            continue
        k, v = inputs[pos], inputs[pos + 1]
        assert k < kv_vocab // 2 <= v < kv_vocab and kv.setdefault(k, v) == v
        expected = v if sum(1 for j in range(0, pos, 2) if inputs[j] == k) else IGNORE
        assert targets[pos] == expected and targets[pos + 1] == IGNORE
        seen_scored += expected != IGNORE
        pos += 2
    return seen_scored


def test_mad_recall_scores_repeated_keys():
    task = make_task("mad_recall", train_examples="0")
    assert sum(_check_recall(i, t, 16) for i, t in _rows(task.batch(0, 0, 8))) > 100


def test_mad_noisy_recall_skips_noise():
    task = make_task("mad_noisy_recall", train_examples="32")
    batch = task.batch(0, 0, 8)
    assert task.vocab_size == 32
    noise = float((batch.inputs >= 16).float().mean())
    assert 0.1 < noise < 0.3
    assert sum(_check_recall(i, t, 16) for i, t in _rows(batch)) > 100


def test_mad_fuzzy_recall_multi_token_motifs():
    task = make_task("mad_fuzzy_recall", train_examples="0")
    pad, half = 15, 8
    n_scored = 0
    for inputs, targets in _rows(task.batch(0, 0, 6)):
        # Split into alternating runs of key tokens and value tokens, then the padding.
        runs, kinds = [], []
        for t, tok in enumerate(inputs):
            kind = "pad" if tok == pad else ("key" if tok < half else "value")
            if not kinds or kinds[-1] != kind:
                runs.append([])
                kinds.append(kind)
            runs[-1].append(t)
        assert all(k == "pad" for k in kinds[kinds.index("pad"):]) if "pad" in kinds else True
        expected = [IGNORE] * len(inputs)
        kv = {}
        for key_run, value_run in zip(runs[0::2], runs[1::2]):
            key = tuple(inputs[t] for t in key_run)
            value = tuple(inputs[t] for t in value_run)
            assert 1 <= len(key) <= 3 and 1 <= len(value) <= 3
            if key in kv:
                assert kv[key] == value
                for t in value_run:
                    expected[t - 1] = inputs[t]
            kv[key] = value
        assert len(kv) <= 8
        assert targets == expected
        n_scored += sum(y != IGNORE for y in targets)
    assert n_scored > 50


def test_mad_compression_queries_return_positions():
    task = make_task("mad_compression", seq_len="10", train_examples="0")
    for inputs, targets in _rows(task.batch(0, 0, 4)):
        assert inputs[10] == 16 and inputs[11:] == list(range(17, 27))
        assert targets[:11] == [IGNORE] * 11 and targets[11:] == inputs[:10]


def test_mad_memorization_uses_one_fixed_map():
    task = make_task("mad_memorization", train_examples="64")
    kv = {}
    for step in range(5):
        for inputs, targets in _rows(task.batch(step, step, 8)):
            assert inputs[1::2] == [255] * 16 and targets[0::2] == [IGNORE] * 16
            for k, v in zip(inputs[0::2], targets[1::2]):
                assert k < 128 <= v < 255 and kv.setdefault(k, v) == v
    eval_rows = task.eval_batches(0, 8, 1)["test"][0]
    for inputs, targets in _rows(eval_rows):
        for k, v in zip(inputs[0::2], targets[1::2]):
            assert kv.get(k, v) == v
    assert len(kv) > 64


def test_charlm_windows_come_from_disjoint_stdlib_files():
    task = make_task("charlm", seq_len="64", max_bytes="300000")
    train_text, valid_text = bytes(task.text("train").tolist()), bytes(task.text("valid").tolist())
    batch = task.batch(0, 0, 4)
    for inputs, targets in _rows(batch):
        assert inputs[1:] == targets[:-1]
        assert bytes(inputs + targets[-1:]) in train_text
    for inputs, targets in _rows(task.eval_batches(0, 4, 1)["valid"][0]):
        assert bytes(inputs + targets[-1:]) in valid_text
    from madc.train.tasks import _stdlib_files

    files = _stdlib_files()
    valid = [p for p in files if is_validation_file(p)]
    assert 0 < len(valid) < len(files) / 4
    assert valid_text.startswith(valid[0].read_bytes()[:1000])
