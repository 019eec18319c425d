"""The six MAD synthetic tasks (Poli et al., 2024, "Mechanistic Design and Scaling of Hybrid
Architectures") at their baseline settings, as next-token prediction with scored positions.

MAD trains on a fixed set of examples; `train_examples > 0` reproduces that (a pool generated
once from `data_seed`, batches drawn from it by the step's generator); `0` streams fresh
examples. Settings and deviations from the paper are listed in docs/training.md.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from madc.train.tasks import IGNORE, Batch, SelectiveCopy, Task, TaskError, _choose, _randint


class _Pooled(Task):
    """Mixin: optional fixed training pool of `train_examples` examples."""

    train_examples: int
    data_seed: int

    def generate(self, gen: torch.Generator, batch_size: int) -> Batch:
        raise NotImplementedError

    def sample(self, gen, batch_size, split="train"):
        if split != "train" or self.train_examples <= 0:
            return self.generate(gen, batch_size)
        pool = self.__dict__.get("_pool")
        if pool is None:
            pool = self.generate(torch.Generator().manual_seed(self.data_seed), self.train_examples)
            object.__setattr__(self, "_pool", pool)
        idx = _randint(gen, 0, self.train_examples, (batch_size,))
        return Batch(pool.inputs[idx], pool.targets[idx])


@dataclass(frozen=True)
class Recall(_Pooled):
    """In-context recall (and noisy recall with `frac_noise > 0`).

    Each example draws a random map from keys (ids 0..vocab/2-1) to values (vocab/2..vocab-1)
    and a sequence of key-value pairs with keys drawn with replacement. Target at a key's
    position is its value, scored only when the key already appeared earlier in the example
    (multi-query recall). With noise, each pair slot is replaced, with probability
    `frac_noise`, by two tokens from a separate noise vocabulary (ids vocab..vocab+noise-1).
    """

    name = "mad_recall"
    kv_vocab: int = 16
    seq_len: int = 128
    noise_vocab: int = 0
    frac_noise: float = 0.0
    train_examples: int = 12_800
    data_seed: int = 0

    def __post_init__(self):
        if self.kv_vocab < 4 or self.kv_vocab % 2 or self.seq_len % 2:
            raise TaskError("recall: kv_vocab must be even and >= 4, seq_len even")
        if not 0 <= self.frac_noise < 1 or (self.frac_noise > 0 and self.noise_vocab < 1):
            raise TaskError("recall: need 0 <= frac_noise < 1 and noise_vocab >= 1 for noise")

    @property
    def vocab_size(self) -> int:
        """Key, value and noise tokens."""
        return self.kv_vocab + self.noise_vocab

    def generate(self, gen, b):
        half, pairs = self.kv_vocab // 2, self.seq_len // 2
        kv_map = _randint(gen, half, self.kv_vocab, (b, half))
        keys = _randint(gen, 0, half, (b, pairs))
        values = kv_map.gather(1, keys)
        noise = torch.rand(b, pairs, generator=gen) < self.frac_noise
        noise_tokens = _randint(gen, 0, max(self.noise_vocab, 1), (b, pairs, 2)) + self.kv_vocab
        # A key counts as seen only where it was shown with its value (not replaced by noise).
        shown = torch.where(noise, -1, keys)
        scored = ~noise & _seen_before_masked(shown)
        inputs = torch.stack([keys, values], dim=2)
        inputs = torch.where(noise[..., None], noise_tokens, inputs).reshape(b, -1)
        targets = torch.full((b, pairs, 2), IGNORE, dtype=torch.long)
        targets[:, :, 0] = torch.where(scored, values, IGNORE)
        return Batch(inputs, targets.reshape(b, -1))


def _seen_before_masked(shown: torch.Tensor) -> torch.Tensor:
    """Like `_seen_before`, ignoring entries equal to -1 (hidden)."""
    same = (shown[:, :, None] == shown[:, None, :]) & (shown[:, None, :] >= 0)
    return torch.tril(same, diagonal=-1).any(dim=2)


@dataclass(frozen=True)
class FuzzyRecall(_Pooled):
    """Fuzzy in-context recall: keys and values are motifs of 1..`max_motif` tokens (keys from
    ids 0..vocab/2-1, values from vocab/2..vocab-2; id vocab-1 pads the tail). Each example
    has `n_keys` distinct key motifs mapped to value motifs; pairs are drawn with replacement.
    Every value token of a repeated key is scored (predicted from the token before it)."""

    name = "mad_fuzzy_recall"
    kv_vocab: int = 16
    seq_len: int = 128
    max_motif: int = 3
    n_keys: int = 8
    train_examples: int = 12_800
    data_seed: int = 0

    @property
    def vocab_size(self) -> int:
        """Key and value tokens plus the pad token."""
        return self.kv_vocab

    def generate(self, gen, b):
        inputs = torch.full((b, self.seq_len), self.kv_vocab - 1, dtype=torch.long)
        targets = torch.full((b, self.seq_len), IGNORE, dtype=torch.long)
        # Python's RNG, seeded from `gen`, is ~20x faster than scalar torch draws here.
        rng = random.Random(int(_randint(gen, 0, 1 << 62, ())))
        for row in range(b):
            keys, values = self._motifs(rng)
            seq, scored, seen = [], [], set()
            while True:
                j = rng.randrange(self.n_keys)
                if len(seq) + len(keys[j]) + len(values[j]) > self.seq_len:
                    break
                seq += keys[j] + values[j]
                scored += [False] * len(keys[j]) + [j in seen] * len(values[j])
                seen.add(j)
            # Next-token targets: position t predicts token t+1 when that one is scored.
            tgt = [s if ok else IGNORE for s, ok in zip(seq[1:], scored[1:])]
            inputs[row, : len(seq)] = torch.tensor(seq)
            targets[row, : len(tgt)] = torch.tensor(tgt, dtype=torch.long)
        return Batch(inputs, targets)

    def _motifs(self, rng: random.Random):
        half = self.kv_vocab // 2
        keys: list[list[int]] = []
        while len(keys) < self.n_keys:
            motif = [rng.randrange(half) for _ in range(rng.randint(1, self.max_motif))]
            if motif not in keys:
                keys.append(motif)
        values = [[rng.randrange(half, self.kv_vocab - 1)
                   for _ in range(rng.randint(1, self.max_motif))] for _ in keys]
        return keys, values


@dataclass(frozen=True)
class Compression(_Pooled):
    """Compression: `seq_len` random tokens (ids 0..data_vocab-1), a compress token, then
    `seq_len` position queries (distinct ids); the target at the i-th query is token i. The
    model must hold the whole sequence in its state when the compress token arrives."""

    name = "mad_compression"
    data_vocab: int = 16
    seq_len: int = 32
    train_examples: int = 12_800
    data_seed: int = 0

    @property
    def vocab_size(self) -> int:
        """Data tokens, the compress token and one query token per position."""
        return self.data_vocab + 1 + self.seq_len

    def generate(self, gen, b):
        n = self.seq_len
        data = _randint(gen, 0, self.data_vocab, (b, n))
        queries = (torch.arange(n) + self.data_vocab + 1).expand(b, n)
        compress = torch.full((b, 1), self.data_vocab, dtype=torch.long)
        inputs = torch.cat([data, compress, queries], dim=1)
        targets = torch.cat([torch.full((b, n + 1), IGNORE, dtype=torch.long), data], dim=1)
        return Batch(inputs, targets)


@dataclass(frozen=True)
class Memorization(_Pooled):
    """Memorisation: one fixed key -> value map for the whole task (drawn from `data_seed`),
    keys 0..vocab/2-1, values vocab/2..vocab-2, id vocab-1 an insert token. Examples are
    `key, insert` pairs; the target at each insert token is the key's value. Nothing in the
    context reveals the map: it must be stored in the weights."""

    name = "mad_memorization"
    kv_vocab: int = 256
    seq_len: int = 32
    train_examples: int = 12_800
    data_seed: int = 0

    @property
    def vocab_size(self) -> int:
        """Key, value and insert tokens."""
        return self.kv_vocab

    def kv_map(self) -> torch.Tensor:
        """The task's fixed map: kv_map()[k] is key k's value."""
        half = self.kv_vocab // 2
        gen = torch.Generator().manual_seed(self.data_seed + 12345)
        return _randint(gen, half, self.kv_vocab - 1, (half,))

    def generate(self, gen, b):
        half, pairs = self.kv_vocab // 2, self.seq_len // 2
        keys = _choose(gen, half, pairs, b) if pairs <= half else _randint(gen, 0, half, (b, pairs))
        insert = torch.full_like(keys, self.kv_vocab - 1)
        inputs = torch.stack([keys, insert], dim=2).reshape(b, -1)
        targets = torch.stack([torch.full_like(keys, IGNORE), self.kv_map()[keys]], dim=2)
        return Batch(inputs, targets.reshape(b, -1))


@dataclass(frozen=True)
class MadSelectiveCopy(SelectiveCopy):
    """MAD's selective copying: vocab 16 (14 data tokens + noise + marker), total length 256
    of which the last 16 are the copy prompt."""

    name = "mad_selective_copy"
    n_data: int = 14
    context_len: int = 240
    n_tokens: int = 16


TASKS = {
    "mad_recall": (Recall, {}),
    "mad_fuzzy_recall": (FuzzyRecall, {}),
    "mad_noisy_recall": (Recall, {"noise_vocab": 16, "frac_noise": 0.2}),
    "mad_selective_copy": (MadSelectiveCopy, {}),
    "mad_compression": (Compression, {}),
    "mad_memorization": (Memorization, {}),
}
