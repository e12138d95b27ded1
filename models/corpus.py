"""Reading sentence-per-line text corpora.

A corpus is a UTF-8 text file with one sentence per line. :func:`read_lines` returns the
stripped, non-empty lines; :func:`split_lines` makes a deterministic train/validation split.
The bundled corpus (dinosaur names, one per line) is at :func:`bundled_corpus_path`.

This module imports only numpy and the standard library.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["CorpusError", "read_lines", "bundled_corpus_path", "split_lines"]

_UTF8_BOM = b"\xef\xbb\xbf"


class CorpusError(ValueError):
    """A corpus file is missing, unreadable, not UTF-8 or empty; the message names the path."""


def bundled_corpus_path() -> Path:
    """Path of the bundled corpus ``data/dinos.txt`` (dinosaur names, one per line)."""
    return Path(__file__).resolve().parent / "data" / "dinos.txt"


def read_lines(path: str | os.PathLike[str]) -> list[str]:
    """Read a UTF-8 corpus: one sentence per line.

    Lines are split on ``'\\n'`` only, stripped of surrounding whitespace (so ``'\\r\\n'``
    endings are fine), and empty lines are dropped. A leading UTF-8 byte-order mark is
    ignored.

    Parameters
    ----------
    path : str or os.PathLike
        The text file.

    Returns
    -------
    list of str
        The non-empty stripped lines, in file order.

    Raises
    ------
    CorpusError
        If the file is missing, is a directory, cannot be read, is not valid UTF-8 (the
        message gives the byte offset and line number), or has no non-empty line.
    """
    p = Path(path)
    if not p.exists():
        raise CorpusError(f"corpus file not found: {str(p)!r}")
    if p.is_dir():
        raise CorpusError(f"corpus path {str(p)!r} is a directory, expected a text file")
    try:
        data = p.read_bytes()
    except OSError as e:
        raise CorpusError(f"cannot read corpus file {str(p)!r}: {e.strerror or e}") from e
    skip = len(_UTF8_BOM) if data.startswith(_UTF8_BOM) else 0
    try:
        text = data[skip:].decode("utf-8")
    except UnicodeDecodeError as e:
        offset = skip + e.start
        line_no = data[:offset].count(b"\n") + 1
        raise CorpusError(
            f"corpus file {str(p)!r} is not valid UTF-8: byte {data[offset]:#04x} at byte "
            f"offset {offset} (line {line_no}): {e.reason}"
        ) from None
    lines = [s for s in (line.strip() for line in text.split("\n")) if s]
    if not lines:
        raise CorpusError(f"corpus file {str(p)!r} is empty: it has no non-empty line")
    return lines


def split_lines(
    lines: Sequence[str], valid_fraction: float, seed: int
) -> tuple[list[str], list[str]]:
    """Split lines into a training and a validation part, deterministically.

    A permutation drawn from ``numpy.random.default_rng(seed)`` picks the validation lines;
    both parts keep the lines' original relative order.

    The validation part has ``n_valid = round(valid_fraction * n)`` lines, clamped to
    ``[1, n - 1]`` when ``valid_fraction > 0`` and ``n >= 2`` (so neither part is empty);
    with ``n == 1`` or ``valid_fraction == 0`` validation is empty.

    Parameters
    ----------
    lines : sequence of str
    valid_fraction : float
        In ``[0, 1)``.
    seed : int
        Seed of the shuffle; the same seed gives the same split.

    Returns
    -------
    (train, valid) : tuple of lists of str
    """
    if not 0.0 <= valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must be in [0, 1), got {valid_fraction!r}")
    lines = list(lines)
    n = len(lines)
    if n == 0:
        raise ValueError("split_lines got no lines to split")
    n_valid = 0
    if valid_fraction > 0 and n >= 2:
        n_valid = min(max(1, round(valid_fraction * n)), n - 1)
    order = np.random.default_rng(seed).permutation(n)
    is_valid = np.zeros(n, dtype=bool)
    is_valid[order[:n_valid]] = True
    train = [s for s, v in zip(lines, is_valid) if not v]
    valid = [s for s, v in zip(lines, is_valid) if v]
    return train, valid
