"""Batches for language models: padded sentence batches with masks, and a BPTT stream.

Everything here is time-major: arrays are ``(T, B)``, time first, as scan iterates over
axis 0.

Language-model convention
-------------------------
A sequence of ids ``s`` of length ``L`` gives ``L - 1`` training positions: the input at step
``t`` is ``s[t]`` and the target is the next token ``s[t + 1]``::

    inputs  = s[:-1]
    targets = s[1:]

So a sentence encoded as ``[eos] + ids + [eos]`` (pass ``bos_id=eos_id`` and append the
``eos`` yourself) learns to predict the first token from the start marker and the end
marker from the last token. Sequences shorter than 2 ids have no target and are skipped.

This module imports only numpy and the standard library.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["PaddedBatch", "make_padded_batches", "padding_fraction", "check_mask", "BPTTStream"]

_INT32_MAX = np.iinfo(np.int32).max


@dataclass
class PaddedBatch:
    """One batch of padded sequences, time-major.

    Attributes
    ----------
    inputs : numpy.ndarray of int32, shape (T, B)
        ``inputs[t, b]`` is token ``t`` of sequence ``b``; padding holds ``pad_id``.
    targets : numpy.ndarray of int32, shape (T, B)
        ``targets[t, b]`` is token ``t + 1`` of sequence ``b``; padding holds ``pad_id``.
    mask : numpy.ndarray of float, shape (T, B)
        1.0 where ``targets`` holds a real token, 0.0 on padding. Each column is
        ``1 ... 1 0 ... 0``.
    n_tokens : int
        Number of real target tokens, ``mask.sum()``.
    lengths : numpy.ndarray of int64, shape (B,)
        Real steps per column (``len(sequence) - 1``); derived from `mask` when omitted.
    indices : numpy.ndarray of int64, shape (B,), optional
        Position of each column's sequence in the list given to :func:`make_padded_batches`.
    """

    inputs: np.ndarray
    targets: np.ndarray
    mask: np.ndarray
    n_tokens: int
    lengths: np.ndarray | None = field(default=None)
    indices: np.ndarray | None = field(default=None)

    def __post_init__(self) -> None:
        shapes = {"inputs": self.inputs.shape, "targets": self.targets.shape}
        for name, shape in shapes.items():
            if shape != self.mask.shape or len(shape) != 2:
                raise ValueError(
                    f"PaddedBatch expects 2-D (T, B) arrays of one shape; {name} has shape "
                    f"{shape}, mask has shape {self.mask.shape}"
                )
        if self.lengths is None:
            self.lengths = (self.mask != 0).sum(axis=0).astype(np.int64)

    @property
    def n_steps(self) -> int:
        """T, the number of time steps."""
        return int(self.mask.shape[0])

    @property
    def batch_size(self) -> int:
        """B, the number of sequences."""
        return int(self.mask.shape[1])

    @property
    def padding_fraction(self) -> float:
        """Fraction of the ``T * B`` positions that are padding: ``1 - n_tokens / (T B)``."""
        return 1.0 - self.n_tokens / self.mask.size if self.mask.size else 0.0


def _as_id(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an int, got {value!r}")
    if not 0 <= value <= _INT32_MAX:
        raise ValueError(f"{name} must be in [0, {_INT32_MAX}], got {value}")
    return int(value)


def _as_count(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _as_id_array(seq: object, what: str) -> np.ndarray:
    arr = np.asarray(seq)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be a 1-D sequence of ids, got shape {arr.shape}")
    if arr.size == 0:
        return arr.astype(np.int32)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{what} must hold integer ids, got dtype {arr.dtype}")
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0 or hi > _INT32_MAX:
        bad = lo if lo < 0 else hi
        raise ValueError(f"{what} holds id {bad}, expected ids in [0, {_INT32_MAX}]")
    return arr.astype(np.int32)


def make_padded_batches(
    sequences: Sequence[Sequence[int] | np.ndarray],
    batch_size: int,
    pad_id: int,
    bos_id: int | None = None,
    bucket: bool = True,
    shuffle_seed: int | None = None,
    dtype: str | np.dtype = "float32",
) -> list[PaddedBatch]:
    """Cut sequences into padded, masked, time-major language-model batches.

    For each sequence ``s`` (with ``bos_id`` prepended when given), column ``b`` of a batch
    holds ``inputs[:L, b] = s[:-1]`` and ``targets[:L, b] = s[1:]`` with ``L = len(s) - 1``;
    the rest of the column is ``pad_id`` with mask 0. A batch has ``T = max L`` over its
    sequences. The loss of a batch is then

    .. math:: \\frac{1}{n_{tokens}} \\sum_{t, b} m_{tb} \\, (-\\log p(y_{tb} \\mid x_{\\le t, b}))

    Parameters
    ----------
    sequences : sequence of 1-D integer arrays
        Token ids, each already ending with the end token if you want one.
    batch_size : int
        Sequences per batch; the last batch may be smaller.
    pad_id : int
        Id written into padded positions of `inputs` and `targets`.
    bos_id : int, optional
        If given, prepended to every sequence (e.g. the ``<eos>`` id used as a start marker).
    bucket : bool
        Sort sequences by length before cutting batches, so that a batch holds sequences of
        similar length and little padding. Batch order is then shuffled (with
        `shuffle_seed`), so training does not see short sentences first.
    shuffle_seed : int, optional
        ``None``: deterministic, no shuffling (bucketed batches run from short to long).
        An int: sequences are shuffled before the (stable) length sort, so ties are broken
        differently per seed, and the batch order is shuffled; use a new seed per epoch.
    dtype : str or numpy.dtype
        Float dtype of the mask.

    Returns
    -------
    list of PaddedBatch

    Raises
    ------
    ValueError
        For an empty `sequences`, bad ids or sizes, or when every sequence is too short.

    Warns
    -----
    UserWarning
        When sequences shorter than 2 ids (after `bos_id`) were skipped; gives the count.
    """
    batch_size = _as_count(batch_size, "batch_size")
    pad_id = _as_id(pad_id, "pad_id")
    if bos_id is not None:
        bos_id = _as_id(bos_id, "bos_id")
    mask_dtype = np.dtype(dtype)
    if mask_dtype.kind != "f":
        raise ValueError(f"mask dtype must be a float dtype, got {mask_dtype}")
    if len(sequences) == 0:
        raise ValueError("make_padded_batches got an empty list of sequences")

    seqs = []
    for i, s in enumerate(sequences):
        arr = _as_id_array(s, f"sequence {i}")
        if bos_id is not None:
            arr = np.concatenate([np.array([bos_id], np.int32), arr])
        seqs.append(arr)
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    order = np.flatnonzero(lengths >= 2)
    n_skipped = len(seqs) - len(order)
    if len(order) == 0:
        raise ValueError(
            f"all {len(seqs)} sequences are shorter than 2 ids, so none has a target; "
            "append an end token or pass bos_id"
        )
    if n_skipped:
        warnings.warn(
            f"make_padded_batches skipped {n_skipped} of {len(seqs)} sequences shorter than "
            "2 ids (they have no target)",
            UserWarning,
            stacklevel=2,
        )

    rng = np.random.default_rng(shuffle_seed) if shuffle_seed is not None else None
    if rng is not None:
        order = rng.permutation(order)
    if bucket:
        order = order[np.argsort(lengths[order], kind="stable")]
    chunks = [order[k : k + batch_size] for k in range(0, len(order), batch_size)]
    if rng is not None:
        chunks = [chunks[j] for j in rng.permutation(len(chunks))]
    return [_pad_chunk(seqs, chunk, pad_id, mask_dtype) for chunk in chunks]


def _pad_chunk(
    seqs: list[np.ndarray], chunk: np.ndarray, pad_id: int, mask_dtype: np.dtype
) -> PaddedBatch:
    steps = np.array([len(seqs[j]) - 1 for j in chunk], dtype=np.int64)
    shape = (int(steps.max()), len(chunk))
    inputs = np.full(shape, pad_id, dtype=np.int32)
    targets = np.full(shape, pad_id, dtype=np.int32)
    mask = np.zeros(shape, dtype=mask_dtype)
    for col, j in enumerate(chunk):
        s, n = seqs[j], steps[col]
        inputs[:n, col] = s[:-1]
        targets[:n, col] = s[1:]
        mask[:n, col] = 1
    return PaddedBatch(inputs, targets, mask, int(steps.sum()), steps, chunk.astype(np.int64))


def padding_fraction(batches: Sequence[PaddedBatch]) -> float:
    """Padded positions over all positions, pooled over `batches`.

    .. math:: 1 - \\frac{\\sum_k n^{(k)}_{tokens}}{\\sum_k T^{(k)} B^{(k)}}
    """
    if len(batches) == 0:
        raise ValueError("padding_fraction got no batches")
    total = sum(b.mask.size for b in batches)
    real = sum(b.n_tokens for b in batches)
    return 1.0 - real / total if total else 0.0


def check_mask(mask: np.ndarray, inputs_shape: Sequence[int]) -> np.ndarray:
    """Validate a sequence mask where data enters a model.

    A valid mask is 2-D ``(T, B)`` equal to the first two dims of `inputs_shape`, holds only
    0 and 1, has every column of the form ``1 ... 1 0 ... 0`` (padding only at the end),
    and no all-zero column.

    Parameters
    ----------
    mask : array_like, shape (T, B)
        Float, integer or bool.
    inputs_shape : sequence of int
        Shape of the inputs it masks: ``(T, B)`` ids or ``(T, B, ...)`` features.

    Returns
    -------
    numpy.ndarray of int64, shape (B,)
        The length (number of ones) of each column.

    Raises
    ------
    ValueError
        Naming what was expected and what came (the offending value, column, step).
    """
    m = np.asarray(mask)
    shape = tuple(int(d) for d in inputs_shape)
    if m.ndim != 2:
        raise ValueError(f"mask must be 2-D (T, B), got a {m.ndim}-D mask of shape {m.shape}")
    if len(shape) < 2 or m.shape != shape[:2]:
        raise ValueError(
            f"mask shape {m.shape} does not match inputs of shape {shape}: expected the "
            "mask to be (T, B), the inputs' first two dims"
        )
    if m.dtype.kind not in "biuf":
        raise ValueError(f"mask must be float, int or bool, got dtype {m.dtype}")
    if m.shape[1] == 0:
        raise ValueError(f"mask of shape {m.shape} has no columns: the batch is empty")
    if m.dtype.kind != "b":
        bad = ~((m == 0) | (m == 1))
        n_bad = int(bad.sum())
        if n_bad:
            t, b = (int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"mask must hold only 0 and 1, but {n_bad} entries hold other values, "
                f"e.g. mask[{t}, {b}] = {m[t, b].item()!r}"
            )
    ones = m != 0
    resumed = ones[1:] & ~ones[:-1]
    if resumed.any():
        cols = np.flatnonzero(resumed.any(axis=0))
        b = int(cols[0])
        t = int(np.flatnonzero(resumed[:, b])[0])
        raise ValueError(
            f"mask column {b} has 0 at step {t} followed by 1 at step {t + 1}: padding must "
            f"come only at the end of a column (1 ... 1 0 ... 0); {len(cols)} column(s) "
            "break this"
        )
    lengths = ones.sum(axis=0).astype(np.int64)
    empty = np.flatnonzero(lengths == 0)
    if empty.size:
        raise ValueError(
            f"mask has {empty.size} all-zero column(s), e.g. column {int(empty[0])}: every "
            "column needs at least one real step"
        )
    return lengths


class BPTTStream:
    """A contiguous id stream cut into windows for truncated backpropagation through time.

    The stream is cut into `batch_size` contiguous rows (the remainder is dropped), as in
    TensorFlow's PTB reader::

        batch_len = len(ids) // batch_size
        rows = ids[: batch_size * batch_len].reshape(batch_size, batch_len)

    Window ``i`` (``0 <= i < len(stream)``) is, transposed to time-major ``(bptt, batch)``::

        x = rows[:, i * bptt : (i + 1) * bptt]
        y = rows[:, i * bptt + 1 : (i + 1) * bptt + 1]

    with ``len(stream) = (batch_len - 1) // bptt``; a last partial window is dropped. Row
    ``b`` of window ``i + 1`` continues row ``b`` of window ``i``, so carry the recurrent
    state from one window to the next.

    Parameters
    ----------
    ids : 1-D integer array
        The whole corpus as one id stream (sentences joined with an end token).
    batch_size : int
        Number of rows B.
    bptt : int
        Steps per window T.

    Raises
    ------
    ValueError
        If the stream has fewer than ``batch_size * (bptt + 1)`` ids (no full window).
    """

    def __init__(self, ids: Sequence[int] | np.ndarray, batch_size: int, bptt: int) -> None:
        self.batch_size = _as_count(batch_size, "batch_size")
        self.bptt = _as_count(bptt, "bptt")
        arr = _as_id_array(ids, "BPTTStream ids")
        batch_len = len(arr) // self.batch_size
        n_steps = (batch_len - 1) // self.bptt
        if n_steps < 1:
            raise ValueError(
                f"BPTTStream: a stream of {len(arr)} ids is too short for "
                f"batch_size={self.batch_size} and bptt={self.bptt}: one window needs at "
                f"least batch_size * (bptt + 1) = {self.batch_size * (self.bptt + 1)} ids"
            )
        self._n_steps = n_steps
        self.rows = arr[: self.batch_size * batch_len].reshape(self.batch_size, batch_len)
        self.rows.flags.writeable = False

    def __len__(self) -> int:
        return self._n_steps

    @property
    def n_tokens(self) -> int:
        """Target tokens per pass over the stream, ``len(self) * bptt * batch_size``."""
        return self._n_steps * self.bptt * self.batch_size

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Window `i` as ``(inputs, targets)``, each int32 of shape ``(bptt, batch_size)``."""
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"BPTTStream index must be an int, got {type(i).__name__}")
        if not -self._n_steps <= i < self._n_steps:
            raise IndexError(f"BPTTStream has {self._n_steps} windows, got index {i}")
        i = int(i) % self._n_steps
        lo = i * self.bptt
        x = np.ascontiguousarray(self.rows[:, lo : lo + self.bptt].T)
        y = np.ascontiguousarray(self.rows[:, lo + 1 : lo + self.bptt + 1].T)
        return x, y

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for i in range(self._n_steps):
            yield self[i]

    def __repr__(self) -> str:
        return (
            f"BPTTStream(batch_size={self.batch_size}, bptt={self.bptt}, "
            f"windows={self._n_steps}, row_len={self.rows.shape[1]})"
        )
