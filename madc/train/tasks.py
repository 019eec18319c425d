"""Synthetic and small real tasks for `madc train`, generated on the fly.

Every task turns a `torch.Generator` into a `Batch` of token ids `inputs [B, T]` and
`targets [B, T]`; `targets == IGNORE` marks positions that are not scored. Nothing is
downloaded. A task is a frozen dataclass whose fields are its settings (docs/training.md lists
them and where they come from); `make_task(name, **overrides)` builds one by name.

Determinism: `Task.batch(step, seed, batch_size)` seeds a fresh generator from `(seed, step)`,
so the data stream needs no state of its own and resuming at step `s` sees exactly the batches
an uninterrupted run would. Evaluation batches come from a disjoint seed range.
"""

from __future__ import annotations

import dataclasses
import itertools
import sysconfig
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import torch

IGNORE = -100
_EVAL_SEED_OFFSET = 1 << 40


class TaskError(ValueError):
    """A task name or setting the user got wrong (reported without a traceback)."""


@dataclass(frozen=True)
class Batch:
    """Token ids `inputs [B, T]` and `targets [B, T]` (IGNORE where not scored)."""

    inputs: torch.Tensor
    targets: torch.Tensor

    def shard(self, rank: int, world: int) -> Batch:
        """The contiguous block of rows that data-parallel rank `rank` of `world` trains on."""
        n = self.inputs.shape[0]
        if n % world:
            raise TaskError(f"batch size {n} is not divisible by the world size {world}")
        k = n // world
        return Batch(self.inputs[rank * k:(rank + 1) * k], self.targets[rank * k:(rank + 1) * k])


def step_generator(seed: int, step: int) -> torch.Generator:
    """The generator for training step `step` of a run seeded `seed`."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) % (1 << 62))


class Task:
    """Base class: subclasses are frozen dataclasses implementing `sample` and `eval_specs`."""

    name = "task"
    vocab_size: int

    def sample(self, gen: torch.Generator, batch_size: int, split: str = "train") -> Batch:
        """One batch of `batch_size` examples drawn with `gen` (split "train" or an eval set)."""
        raise NotImplementedError

    def eval_sets(self) -> tuple[str, ...]:
        """Names of the evaluation sets (passed to `sample` as `split`)."""
        return ("test",)

    def batch(self, step: int, seed: int, batch_size: int) -> Batch:
        """The training batch of step `step`: a pure function of (seed, step)."""
        return self.sample(step_generator(seed, step), batch_size, "train")

    def eval_batches(self, seed: int, batch_size: int, n_batches: int) -> dict[str, list[Batch]]:
        """Fixed evaluation batches per eval set, disjoint from the training stream."""
        out = {}
        for i, split in enumerate(self.eval_sets()):
            base = seed + _EVAL_SEED_OFFSET + 7919 * i
            gens = (step_generator(base, j) for j in range(n_batches))
            out[split] = [self.sample(g, batch_size, split) for g in gens]
        return out


def _randint(gen: torch.Generator, lo: int, hi: int, size) -> torch.Tensor:
    return torch.randint(lo, hi, size, generator=gen)


def _choose(gen: torch.Generator, n: int, k: int, rows: int) -> torch.Tensor:
    """`rows` independent draws of k distinct values from range(n), in random order."""
    return torch.rand(rows, n, generator=gen).argsort(dim=1)[:, :k]


# ----------------------------------------------------------------------------- MQAR


def _parse_pairs(text) -> tuple:
    if isinstance(text, tuple):
        return text
    try:
        return tuple(tuple(int(v) for v in item.split(":")) for item in str(text).split(","))
    except ValueError as e:
        raise TaskError(f"expected 'T:pairs,T:pairs', got {text!r}") from e


@dataclass(frozen=True)
class MQAR(Task):
    """Multi-query associative recall as in Zoology (Arora et al., 2023).

    An example is `num_pairs` key-value pairs (keys from the first half of the vocabulary,
    distinct within an example; values from the second half) followed by queries: each key
    appears once more at a power-law-distributed gap, and the target at the query position is
    its value. Non-query filler positions hold random tokens; only query positions are scored.
    """

    name = "mqar"
    vocab_size: int = 8192
    train_configs: tuple = ((64, 4), (128, 8), (256, 16), (256, 32), (256, 64))
    train_weights: tuple = (5, 1, 1, 1, 1)
    test_configs: tuple = ((64, 4), (64, 8), (64, 16), (128, 32), (256, 64), (512, 64),
                           (512, 128))
    power_a: float = 0.01

    def __post_init__(self):
        for attr in ("train_configs", "test_configs"):
            object.__setattr__(self, attr, _parse_pairs(getattr(self, attr)))
        if isinstance(self.train_weights, str):
            weights = tuple(float(w) for w in self.train_weights.split(","))
            object.__setattr__(self, "train_weights", weights)
        if len(self.train_weights) != len(self.train_configs):
            object.__setattr__(self, "train_weights", (1,) * len(self.train_configs))
        for t, p in self.train_configs + self.test_configs:
            if 4 * p > t:
                raise TaskError(f"mqar: T={t} is too short for {p} pairs (need T >= 4*pairs)")
            if p > self.vocab_size // 2 - 1:
                raise TaskError(f"mqar: {p} pairs need vocab_size > {2 * p + 2}")

    def eval_sets(self) -> tuple[str, ...]:
        return tuple(f"T{t}_kv{p}" for t, p in self.test_configs)

    def sample(self, gen, batch_size, split="train"):
        if split == "train":
            w = torch.tensor(self.train_weights, dtype=torch.float)
            seq_len, pairs = self.train_configs[int(torch.multinomial(w, 1, generator=gen))]
        else:
            seq_len, pairs = self.test_configs[self.eval_sets().index(split)]
        return self.example(gen, batch_size, seq_len, pairs)

    def example(self, gen, b: int, seq_len: int, pairs: int) -> Batch:
        """A batch of `b` MQAR examples of length `seq_len` with `pairs` key-value pairs."""
        half = self.vocab_size // 2
        keys = _choose(gen, half - 1, pairs, b) + 1  # 0 is reserved for filler
        values = _randint(gen, half, self.vocab_size, (b, pairs))
        ctx = 2 * pairs
        # Query slots are the even offsets after the context; gaps follow Zoology's power law.
        space = (seq_len - ctx) // 2
        x = torch.arange(1, space + 1, dtype=torch.float)
        p = self.power_a * x ** (self.power_a - 1)
        gaps = torch.multinomial((p / p.sum()).expand(b, -1), pairs, generator=gen)
        inputs = torch.zeros(b, seq_len, dtype=torch.long)
        inputs[:, 0:ctx:2], inputs[:, 1:ctx:2] = keys, values
        targets = torch.full((b, seq_len), IGNORE, dtype=torch.long)
        qpos = ctx + 2 * gaps
        inputs.scatter_(1, qpos, keys)
        targets.scatter_(1, qpos, values)
        filler = inputs == 0
        inputs[filler] = _randint(gen, 0, self.vocab_size, (int(filler.sum()),))
        return Batch(inputs, targets)


# ------------------------------------------------------------------ permutation groups


def _perm_elements(n: int, even_only: bool) -> list[tuple[int, ...]]:
    def parity(p):
        return sum(1 for i, j in itertools.combinations(range(n), 2) if p[i] > p[j]) % 2

    return [p for p in itertools.permutations(range(n)) if not even_only or parity(p) == 0]


@dataclass(frozen=True)
class PermutationComposition(Task):
    """State tracking: token t is a group element g_t; the label at t is the running product
    p_t = g_t o p_{t-1} (p_0 = identity, (f o g)(i) = f(g(i))), as an element index.

    Trains at `train_len`; evaluates at `train_len` and each of `test_lens` (extrapolation).
    With `bos`, a begin-of-sequence token (id = group order, target IGNORE) comes first: a
    recurrence with a zero initial state and an additive input term can then load its
    "identity" state once, which it otherwise has no way to tell apart from later tokens.
    """

    name = "s5"
    n: int = 5
    even_only: bool = False
    train_len: int = 32
    test_lens: tuple = (64,)
    bos: bool = True

    def __post_init__(self):
        if isinstance(self.test_lens, (str, int)):
            lens = tuple(int(v) for v in str(self.test_lens).split(",") if v)
            object.__setattr__(self, "test_lens", lens)
        elements = _perm_elements(self.n, self.even_only)
        index = {p: i for i, p in enumerate(elements)}
        table = torch.tensor([[index[tuple(f[g[i]] for i in range(self.n))] for g in elements]
                              for f in elements])
        object.__setattr__(self, "elements", elements)
        object.__setattr__(self, "_table", table)  # table[f, g] = index of f o g

    @property
    def vocab_size(self) -> int:
        """Number of group elements (plus the BOS token)."""
        return len(self.elements) + int(self.bos)

    def eval_sets(self):
        return tuple(f"T{t}" for t in (self.train_len,) + tuple(self.test_lens))

    def sample(self, gen, batch_size, split="train"):
        seq_len = self.train_len if split == "train" else int(split[1:])
        order = len(self.elements)
        tokens = _randint(gen, 0, order, (batch_size, seq_len))
        labels = torch.empty_like(tokens)
        prod = tokens[:, 0]
        labels[:, 0] = prod
        for t in range(1, seq_len):
            prod = self._table[tokens[:, t], prod]
            labels[:, t] = prod
        if self.bos:
            tokens = torch.cat([torch.full((batch_size, 1), order), tokens], dim=1)
            labels = torch.cat([torch.full((batch_size, 1), IGNORE), labels], dim=1)
        return Batch(tokens, labels)


# ---------------------------------------------------------------------- selective copy


@dataclass(frozen=True)
class SelectiveCopy(Task):
    """Selective copying (Gu & Dao, 2023): `n_tokens` data tokens scattered among noise in a
    context of `context_len`, then `n_tokens` marker tokens; at the i-th marker the target is
    the i-th data token. Ids: 0 noise, 1 marker, 2.. data (`n_data` of them)."""

    name = "selective_copy"
    n_data: int = 16
    context_len: int = 256
    n_tokens: int = 16

    def __post_init__(self):
        if self.n_tokens > self.context_len:
            raise TaskError("selective_copy: n_tokens must be <= context_len")

    @property
    def vocab_size(self) -> int:
        """Noise, marker and data tokens."""
        return self.n_data + 2

    def sample(self, gen, batch_size, split="train"):
        b, c, k = batch_size, self.context_len, self.n_tokens
        data = _randint(gen, 2, self.n_data + 2, (b, k))
        pos = _choose(gen, c, k, b).sort(dim=1).values
        inputs = torch.zeros(b, c + k, dtype=torch.long)
        inputs.scatter_(1, pos, data)
        inputs[:, c:] = 1
        targets = torch.full_like(inputs, IGNORE)
        targets[:, c:] = data
        return Batch(inputs, targets)


# ------------------------------------------------------------------------------ charlm


def _stdlib_files() -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    skip = ("site-packages", "dist-packages", "test", "tests", "idlelib", "__pycache__")
    return sorted(p for p in root.rglob("*.py") if not set(p.relative_to(root).parts) & set(skip))


def is_validation_file(path: Path) -> bool:
    """Held-out files: a stable hash of the file name puts ~10% of them in validation."""
    return zlib.crc32(path.name.encode()) % 10 == 0


@dataclass(frozen=True)
class CharLM(Task):
    """Byte-level language model on the Python standard library's own `.py` sources.

    Files are split by a hash of their name (`is_validation_file`); each split is concatenated
    (up to `max_bytes`) and batches are random windows of `seq_len + 1` bytes.
    """

    name = "charlm"
    seq_len: int = 256
    max_bytes: int = 8_000_000
    vocab_size: int = 256
    corpus: dict = field(default_factory=dict, repr=False, compare=False)

    def text(self, split: str) -> torch.Tensor:
        """The concatenated bytes of one split ("train" or "valid") as a uint8 tensor."""
        if split not in self.corpus:
            files = [p for p in _stdlib_files() if is_validation_file(p) == (split == "valid")]
            chunks, size = [], 0
            for p in files:
                if size >= self.max_bytes:
                    break
                chunks.append(p.read_bytes())
                size += len(chunks[-1])
            data = b"".join(chunks)[: self.max_bytes]
            if len(data) <= self.seq_len + 1:
                raise TaskError(f"charlm: not enough stdlib source for split {split!r}")
            self.corpus[split] = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        return self.corpus[split]

    def eval_sets(self):
        return ("valid",)

    def sample(self, gen, batch_size, split="train"):
        data = self.text("train" if split == "train" else "valid")
        start = _randint(gen, 0, len(data) - self.seq_len - 1, (batch_size, 1))
        window = data[start + torch.arange(self.seq_len + 1)].long()
        return Batch(window[:, :-1], window[:, 1:])


def _registry() -> dict:
    from madc.train import tasks_mad

    return {
        "mqar": (MQAR, {}),
        "s5": (PermutationComposition, {"n": 5, "even_only": False}),
        "a5": (PermutationComposition, {"n": 5, "even_only": True}),
        "selective_copy": (SelectiveCopy, {}),
        **tasks_mad.TASKS,
        "charlm": (CharLM, {}),
    }


def task_names() -> list[str]:
    """All task names accepted by `make_task` and `madc train --task`."""
    return list(_registry())


def make_task(name: str, **overrides) -> Task:
    """Build task `name` with setting overrides (strings are converted to the field's type)."""
    registry = _registry()
    if name not in registry:
        raise TaskError(f"unknown task {name!r}; expected one of: {', '.join(registry)}")
    cls, defaults = registry[name]
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "corpus"}
    kwargs = dict(defaults)
    for key, value in overrides.items():
        if key not in fields:
            raise TaskError(f"task {name!r} has no setting {key!r}; settings: {', '.join(fields)}")
        kwargs[key] = _convert(value, fields[key].default, key)
    task = cls(**kwargs)
    object.__setattr__(task, "name", name)
    return task


def _convert(value, default, key):
    if not isinstance(value, str) or isinstance(default, str):
        return value
    try:
        if isinstance(default, bool):
            if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(value)
            return value.lower() in ("1", "true", "yes")
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
    except ValueError as e:
        kind = type(default).__name__
        raise TaskError(f"task setting {key}: cannot read {value!r} as {kind}") from e
    return value  # tuples are parsed by the task itself
