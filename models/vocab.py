"""Token vocabularies for character and word language models.

A :class:`Vocabulary` is a bijection between token strings and integer ids
``0 .. len(vocab) - 1``. Special tokens (``<pad>``, ``<unk>``, ``<eos>`` by default) take the
first ids; corpus tokens follow by descending frequency, ties broken alphabetically, so the
same corpus always gives the same ids.

This module imports only numpy and the standard library.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence

import numpy as np

__all__ = ["PAD", "UNK", "EOS", "DEFAULT_SPECIALS", "Vocabulary", "tokenize"]

PAD = "<pad>"
UNK = "<unk>"
EOS = "<eos>"
DEFAULT_SPECIALS: tuple[str, ...] = (PAD, UNK, EOS)

_LEVELS = ("char", "word")


def tokenize(line: str, level: str) -> list[str]:
    """Split one line of text into tokens.

    Parameters
    ----------
    line : str
        One sentence (no trailing newline needed).
    level : {'char', 'word'}
        ``'char'``: every character is a token, spaces included.
        ``'word'``: tokens are the whitespace-separated words (``str.split()``).

    Returns
    -------
    list of str

    Examples
    --------
    >>> tokenize("ab c", "char")
    ['a', 'b', ' ', 'c']
    >>> tokenize(" the  cat ", "word")
    ['the', 'cat']
    """
    if not isinstance(line, str):
        raise TypeError(f"tokenize expected a str line, got {type(line).__name__}")
    if level == "char":
        return list(line)
    if level == "word":
        return line.split()
    raise ValueError(f"tokenize expected level 'char' or 'word', got {level!r}")


class Vocabulary:
    """An ordered, immutable token <-> id mapping.

    Parameters
    ----------
    tokens : sequence of str
        All tokens in id order (token ``tokens[i]`` has id ``i``). Must be unique, non-empty
        strings.
    specials : sequence of str, optional
        The special tokens; each must appear in `tokens`. The roles pad/unk/eos are found by
        name (:data:`PAD`, :data:`UNK`, :data:`EOS`).

    Notes
    -----
    Use :meth:`build` to make a vocabulary from a corpus, :meth:`to_arrays` /
    :meth:`from_arrays` to store it in an ``.npz`` checkpoint without pickle.
    """

    def __init__(self, tokens: Sequence[str], specials: Sequence[str] = ()) -> None:
        tokens = tuple(tokens)
        for i, tok in enumerate(tokens):
            if not isinstance(tok, str) or tok == "":
                raise ValueError(
                    f"Vocabulary tokens must be non-empty strings; token {i} is {tok!r}"
                )
        index: dict[str, int] = {}
        for i, tok in enumerate(tokens):
            if tok in index:
                raise ValueError(
                    f"Vocabulary tokens must be unique; {tok!r} has ids {index[tok]} and {i}"
                )
            index[tok] = i
        missing = [s for s in specials if s not in index]
        if missing:
            raise ValueError(f"special tokens {missing} are not among the vocabulary tokens")
        self._tokens = tokens
        self._index = index
        self._specials = tuple(specials)

    # ---------------------------------------------------------------- construction
    @classmethod
    def build(
        cls,
        tokens: Iterable[str],
        specials: Sequence[str] = DEFAULT_SPECIALS,
        min_count: int = 1,
        max_size: int | None = None,
    ) -> Vocabulary:
        """Build a vocabulary from a stream of tokens.

        Parameters
        ----------
        tokens : iterable of str
            The corpus as a flat stream of tokens (e.g. the characters or words of every
            line). Occurrences of a special token are not counted.
        specials : sequence of str
            Special tokens, given ids ``0 .. len(specials) - 1`` in this order.
        min_count : int
            Tokens seen fewer than `min_count` times are left out (they encode as ``<unk>``).
        max_size : int, optional
            Cap on ``len(vocab)`` (specials included); the least frequent tokens are dropped.

        Returns
        -------
        Vocabulary
            Ids: specials first, then tokens sorted by ``(-count, token)``.
        """
        specials = tuple(specials)
        if len(set(specials)) != len(specials):
            raise ValueError(f"specials must be unique, got {specials}")
        if not isinstance(min_count, int) or min_count < 1:
            raise ValueError(f"min_count must be an int >= 1, got {min_count!r}")
        if max_size is not None and max_size < len(specials):
            raise ValueError(
                f"max_size must be at least the number of specials ({len(specials)}), "
                f"got {max_size}"
            )
        if isinstance(tokens, str):
            tokens = list(tokens)
        counts: Counter[str] = Counter()
        for tok in tokens:
            if not isinstance(tok, str) or tok == "":
                raise ValueError(f"Vocabulary.build expected non-empty str tokens, got {tok!r}")
            counts[tok] += 1
        special_set = set(specials)
        ranked = sorted(
            (tok for tok, c in counts.items() if c >= min_count and tok not in special_set),
            key=lambda tok: (-counts[tok], tok),
        )
        if max_size is not None:
            ranked = ranked[: max_size - len(specials)]
        return cls(specials + tuple(ranked), specials)

    # ---------------------------------------------------------------- mapping
    def encode(self, tokens: Iterable[str]) -> np.ndarray:
        """Map tokens to ids; unknown tokens map to the ``<unk>`` id.

        Parameters
        ----------
        tokens : iterable of str
            A sequence of tokens. A plain ``str`` is iterated by character.

        Returns
        -------
        numpy.ndarray of int32, shape (n,)
        """
        index = self._index
        unk = index.get(UNK)
        ids = []
        for tok in tokens:
            i = index.get(tok, unk)
            if i is None:
                raise ValueError(
                    f"token {tok!r} is not in the vocabulary and the vocabulary has no "
                    f"{UNK!r} token to map it to"
                )
            ids.append(i)
        return np.asarray(ids, dtype=np.int32)

    def decode(self, ids: Iterable[int] | np.ndarray) -> list[str]:
        """Map ids back to tokens.

        Parameters
        ----------
        ids : iterable of int or 1-D integer array

        Returns
        -------
        list of str

        Raises
        ------
        ValueError
            If an id is outside ``[0, len(self))`` or not an integer.
        """
        arr = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids)
        if arr.size == 0:
            return []
        if arr.ndim != 1:
            raise ValueError(f"decode expected a 1-D sequence of ids, got shape {arr.shape}")
        if arr.dtype.kind not in "iu":
            raise ValueError(f"decode expected integer ids, got dtype {arr.dtype}")
        bad = (arr < 0) | (arr >= len(self._tokens))
        if bad.any():
            raise ValueError(
                f"decode got id {int(arr[bad][0])}, expected ids in [0, {len(self._tokens)})"
            )
        return [self._tokens[i] for i in arr.tolist()]

    def id_of(self, token: str) -> int:
        """The id of `token` (``<unk>``'s id for an unknown token)."""
        return int(self.encode([token])[0])

    # ---------------------------------------------------------------- special ids
    def _special_id(self, name: str) -> int:
        if name not in self._index:
            raise ValueError(f"this vocabulary has no {name!r} token (specials: {self._specials})")
        return self._index[name]

    @property
    def pad_id(self) -> int:
        """Id of ``<pad>``."""
        return self._special_id(PAD)

    @property
    def unk_id(self) -> int:
        """Id of ``<unk>``."""
        return self._special_id(UNK)

    @property
    def eos_id(self) -> int:
        """Id of ``<eos>``."""
        return self._special_id(EOS)

    @property
    def tokens(self) -> tuple[str, ...]:
        """All tokens in id order."""
        return self._tokens

    @property
    def specials(self) -> tuple[str, ...]:
        """The special tokens."""
        return self._specials

    # ---------------------------------------------------------------- dunder
    def __len__(self) -> int:
        return len(self._tokens)

    def __contains__(self, token: object) -> bool:
        return token in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._tokens)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocabulary):
            return NotImplemented
        return self._tokens == other._tokens and self._specials == other._specials

    def __hash__(self) -> int:
        return hash((self._tokens, self._specials))

    def __repr__(self) -> str:
        head = ", ".join(repr(t) for t in self._tokens[:8])
        more = ", ..." if len(self._tokens) > 8 else ""
        return f"Vocabulary(size={len(self)}, tokens=[{head}{more}])"

    # ---------------------------------------------------------------- storage
    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain numpy arrays that describe this vocabulary (no pickle needed).

        Returns
        -------
        dict
            ``'tokens'``: unicode array of the tokens in id order; ``'token_lengths'``:
            int64 lengths (numpy strips trailing ``'\\0'`` from unicode arrays, so the
            lengths restore them exactly); ``'special_ids'``: int64 ids of the specials.
            Prefix the keys as you like when storing them with other arrays.
        """
        tokens = np.array(self._tokens, dtype=str) if self._tokens else np.zeros(0, "<U1")
        return {
            "tokens": tokens,
            "token_lengths": np.array([len(t) for t in self._tokens], dtype=np.int64),
            "special_ids": np.array([self._index[s] for s in self._specials], dtype=np.int64),
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> Vocabulary:
        """Rebuild a vocabulary from the output of :meth:`to_arrays`.

        Raises
        ------
        ValueError
            If a key is missing or an array has the wrong dtype or shape.
        """
        missing = [k for k in ("tokens", "token_lengths", "special_ids") if k not in arrays]
        if missing:
            raise ValueError(f"vocabulary arrays lack {missing}; got keys {sorted(arrays)}")
        raw = np.asarray(arrays["tokens"])
        lengths = np.asarray(arrays["token_lengths"])
        special_ids = np.asarray(arrays["special_ids"])
        if raw.ndim != 1 or raw.dtype.kind != "U":
            raise ValueError(
                f"vocabulary 'tokens' must be a 1-D unicode array, got {raw.dtype} {raw.shape}"
            )
        if lengths.shape != raw.shape or lengths.dtype.kind not in "iu":
            raise ValueError(
                f"vocabulary 'token_lengths' must be integers of shape {raw.shape}, "
                f"got {lengths.dtype} {lengths.shape}"
            )
        if special_ids.ndim != 1 or (special_ids.size and special_ids.dtype.kind not in "iu"):
            raise ValueError(
                f"vocabulary 'special_ids' must be a 1-D integer array, "
                f"got {special_ids.dtype} {special_ids.shape}"
            )
        tokens = []
        for i, (tok, n) in enumerate(zip(raw.tolist(), lengths.tolist())):
            if n < len(tok) or tok != tok.rstrip("\0"):
                raise ValueError(f"vocabulary token {i} ({tok!r}) does not have length {n}")
            tokens.append(tok + "\0" * (n - len(tok)))
        if special_ids.size and (special_ids.min() < 0 or special_ids.max() >= len(tokens)):
            raise ValueError(
                f"vocabulary 'special_ids' must lie in [0, {len(tokens)}), "
                f"got {special_ids.tolist()}"
            )
        return cls(tokens, [tokens[i] for i in special_ids.tolist()])
