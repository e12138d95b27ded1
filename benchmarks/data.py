"""Benchmark data preparation, done once in numpy and shared by every system.

Every array is time-major, ``(T, B)``: ``inputs[t, b]`` is step ``t`` of column ``b`` and
``targets[t, b]`` the token that follows it. Each system converts the same
:class:`Batch` objects to its own tensors, so all systems train on identical batches in
the identical order.

- Masked layout (``lstm-dinos``): one sequence per line, ``[eos] + tokens + [eos]``;
  ``inputs = seq[:-1]``, ``targets = seq[1:]``. Lines are shuffled with the workload's seed,
  the ``len // batch`` full batches' worth are kept (the remainder, fewer than ``batch``
  lines, is dropped so every batch has exactly ``batch`` columns), sorted by length
  (length bucketing), cut into batches, and the batch order is shuffled with the seed.
  Padding (id 0, mask 0) is only ever at the end of a column.
- Contiguous layout (``ptb-small``, ``char-512``): the TF PTB reader convention. The
  corpus becomes one id stream (each line's tokens followed by ``<eos>``), cut into
  ``batch`` rows of ``len // batch`` ids; batch ``i`` is columns ``[i*bptt, (i+1)*bptt)``
  and its targets the same window shifted by one. States are carried between batches;
  :attr:`Batch.reset` marks the first batch of each pass, where they start from zero.

This module imports only numpy and the standard library.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.workloads import Workload
from symgraph.models.corpus import split_lines  # the job's split, so the references match it

__all__ = [
    "EOS",
    "UNK",
    "Batch",
    "Dataset",
    "read_lines",
    "split_lines",
    "build_vocab",
    "encode_stream",
    "padded_batches",
    "stream_batches",
    "prepare",
    "repo_root",
]

EOS = "<eos>"
UNK = "<unk>"


def repo_root() -> Path:
    """The repository root (the folder holding ``benchmarks/``)."""
    return Path(__file__).resolve().parent.parent


@dataclass
class Batch:
    """One training batch, time-major.

    Attributes
    ----------
    index : int
        Position in :attr:`Dataset.batches` (systems may cache converted tensors by it).
    inputs, targets : numpy.ndarray of int32, shape (T, B)
        Token ids; padded positions hold 0.
    mask : numpy.ndarray of float32, shape (T, B)
        1 on real target tokens, 0 on padding (all ones for contiguous batches).
    lengths : numpy.ndarray of int64, shape (B,)
        Real steps per column.
    n_tokens : int
        Real target tokens, ``mask.sum()``: what tokens/s counts.
    reset : bool
        Start this batch from zero states (always true for masked batches; true for the
        first batch of each pass over a contiguous stream).
    """

    index: int
    inputs: np.ndarray
    targets: np.ndarray
    mask: np.ndarray
    lengths: np.ndarray
    n_tokens: int
    reset: bool

    @property
    def shape(self) -> tuple[int, int]:
        """``(T, B)``."""
        return self.inputs.shape

    @property
    def n_positions(self) -> int:
        """Computed positions ``T * B``, padding included (what FLOPs count)."""
        return int(self.inputs.size)


@dataclass
class Dataset:
    """A workload's vocabulary and batches, shared by every system."""

    workload: Workload
    vocab: tuple[str, ...]
    batches: list[Batch]
    path: str

    @property
    def vocab_size(self) -> int:
        """Number of ids (the output layer's width)."""
        return len(self.vocab)

    @property
    def shapes(self) -> set[tuple[int, int]]:
        """Distinct ``(T, B)`` shapes (a shape-specializing jit compiles once per shape)."""
        return {b.shape for b in self.batches}

    @property
    def n_tokens(self) -> int:
        """Real target tokens in one pass over the batches."""
        return sum(b.n_tokens for b in self.batches)

    def cycle(self) -> Iterator[Batch]:
        """The batches in order, forever (same order every pass)."""
        while True:
            yield from self.batches

    def summary(self) -> str:
        """One line: path, vocabulary, batches, tokens, padding."""
        pos = sum(b.n_positions for b in self.batches)
        pad = 1.0 - self.n_tokens / pos if pos else 0.0
        return (
            f"{self.workload.name}: {Path(self.path).name}, vocab {self.vocab_size}, "
            f"{len(self.batches)} batches, {self.n_tokens} tokens/pass, "
            f"{len(self.shapes)} shapes, padding {pad:.1%}"
        )


def read_lines(path: str | os.PathLike[str], lower: bool = False) -> list[str]:
    """Non-empty, stripped lines of a UTF-8 text file (optionally lowercased)."""
    text = Path(path).read_text(encoding="utf-8")
    lines = [s.strip() for s in text.split("\n")]
    return [s.lower() if lower else s for s in lines if s]


def tokens_of(line: str, level: str) -> list[str]:
    """Characters (``level='char'``) or whitespace-separated words (``'word'``)."""
    return list(line) if level == "char" else line.split()


def build_vocab(lines: Iterable[str], level: str, specials: Sequence[str] = (EOS,)) -> tuple:
    """Specials first, then tokens by descending frequency, ties alphabetical."""
    counts = Counter(t for line in lines for t in tokens_of(line, level))
    for s in specials:
        counts.pop(s, None)
    rest = sorted(counts, key=lambda t: (-counts[t], t))
    return tuple(specials) + tuple(rest)


def _index(vocab: Sequence[str]) -> dict[str, int]:
    return {t: i for i, t in enumerate(vocab)}


def encode_lines(lines: Iterable[str], vocab: Sequence[str], level: str) -> list[np.ndarray]:
    """Each line as ``[eos] + ids + [eos]`` (int32); unknown tokens map to ``<unk>``."""
    idx = _index(vocab)
    eos, unk = idx[EOS], idx.get(UNK)
    out = []
    for line in lines:
        ids = [idx.get(t, unk) for t in tokens_of(line, level)]
        if None in ids:
            raise KeyError(f"token not in vocabulary and no {UNK}: {line!r}")
        out.append(np.array([eos, *ids, eos], dtype=np.int32))
    return out


def encode_stream(lines: Iterable[str], vocab: Sequence[str], level: str) -> np.ndarray:
    """One int32 stream: each line's ids followed by ``<eos>`` (unknown -> ``<unk>``)."""
    idx = _index(vocab)
    eos, unk = idx[EOS], idx.get(UNK)
    ids: list[int] = []
    for line in lines:
        for t in tokens_of(line, level):
            i = idx.get(t, unk)
            if i is None:
                raise KeyError(f"token {t!r} not in vocabulary and no {UNK}")
            ids.append(i)
        ids.append(eos)
    return np.asarray(ids, dtype=np.int32)


def padded_batches(
    seqs: Sequence[np.ndarray],
    batch: int,
    seed: int,
    drop_remainder: bool = True,
    bucket: bool = True,
    shuffle: bool = True,
) -> list[Batch]:
    """Masked, padded, time-major batches of ``seq[:-1] -> seq[1:]`` pairs.

    With `shuffle`, sequences are permuted by ``default_rng(seed)`` first; with
    `drop_remainder`, only ``len // batch`` full batches are kept; with `bucket`, the kept
    sequences are sorted by length (stable) before cutting, and the batch order is then
    shuffled with the same generator.
    """
    rng = np.random.default_rng(seed)
    seqs = [s for s in seqs if len(s) >= 2]
    order = rng.permutation(len(seqs)) if shuffle else np.arange(len(seqs))
    if drop_remainder:
        order = order[: (len(seqs) // batch) * batch]
    if bucket:
        order = sorted(order, key=lambda i: len(seqs[i]))
    chunks = [order[i : i + batch] for i in range(0, len(order), batch)]
    if bucket and shuffle:
        chunks = [chunks[i] for i in rng.permutation(len(chunks))]
    out = []
    for k, chunk in enumerate(chunks):
        lengths = np.array([len(seqs[i]) - 1 for i in chunk], dtype=np.int64)
        t_max, b = int(lengths.max()), len(chunk)
        inputs = np.zeros((t_max, b), dtype=np.int32)
        targets = np.zeros((t_max, b), dtype=np.int32)
        mask = np.zeros((t_max, b), dtype=np.float32)
        for j, i in enumerate(chunk):
            n = lengths[j]
            inputs[:n, j] = seqs[i][:-1]
            targets[:n, j] = seqs[i][1:]
            mask[:n, j] = 1.0
        out.append(Batch(k, inputs, targets, mask, lengths, int(lengths.sum()), True))
    return out


def stream_batches(ids: np.ndarray, batch: int, bptt: int) -> list[Batch]:
    """TF PTB-reader batches of a contiguous id stream (time-major, state carried)."""
    ids = np.asarray(ids, dtype=np.int32)
    row_len = len(ids) // batch
    data = ids[: batch * row_len].reshape(batch, row_len)
    n_batches = (row_len - 1) // bptt
    if n_batches < 1:
        raise ValueError(f"stream of {len(ids)} ids too short for batch {batch}, bptt {bptt}")
    out = []
    lengths = np.full(batch, bptt, dtype=np.int64)
    mask = np.ones((bptt, batch), dtype=np.float32)
    for i in range(n_batches):
        x = np.ascontiguousarray(data[:, i * bptt : (i + 1) * bptt].T)
        y = np.ascontiguousarray(data[:, i * bptt + 1 : (i + 1) * bptt + 1].T)
        out.append(Batch(i, x, y, mask, lengths, bptt * batch, i == 0))
    return out


def resolve_path(workload: Workload, root: str | os.PathLike[str] | None = None) -> Path:
    """The workload's corpus file (relative paths are taken from the repository root)."""
    root = Path(root) if root is not None else repo_root()
    for p in (workload.data_path, workload.fallback_path):
        if p is None:
            continue
        path = Path(p) if Path(p).is_absolute() else root / p
        if path.exists():
            return path
    raise FileNotFoundError(
        f"{workload.name}: corpus not found: {workload.data_path!r}"
        + (f" (nor fallback {workload.fallback_path!r})" if workload.fallback_path else "")
        + f" under {str(root)!r}"
    )


def prepare(workload: Workload, root: str | os.PathLike[str] | None = None) -> Dataset:
    """Vocabulary and batches of `workload` (numpy only; call once, share with all systems)."""
    path = resolve_path(workload, root)
    if workload.source == "dinos-chars":
        lines, level = read_lines(path, lower=True), "char"
    elif workload.source == "ptb-chars":
        lines, level = read_lines(path), "char"
    elif workload.source == "ptb-words":
        lines, level = read_lines(path), "word"
    else:
        raise ValueError(f"{workload.name}: unknown source {workload.source!r}")
    vocab = build_vocab(lines, level)
    if workload.masked:
        seqs = encode_lines(lines, vocab, level)
        batches = padded_batches(seqs, workload.batch, workload.seed)
    else:
        ids = encode_stream(lines, vocab, level)
        batches = stream_batches(ids, workload.batch, workload.bptt)
    return Dataset(workload, vocab, batches, str(path))
