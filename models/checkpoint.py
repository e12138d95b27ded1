"""Checkpoints: named numpy arrays plus JSON metadata in one ``.npz`` file, without pickle.

Format (version 1): a zip archive readable by ``numpy.load(path, allow_pickle=False)``.
Each user array ``arrays[key]`` is the member ``key + '.npy'``; two reserved members hold

* ``__symgraph_checkpoint__``: the format version, a 0-d int64 array;
* ``__symgraph_meta__``: the metadata as a JSON string, a 0-d unicode array.

Writes are atomic: the archive goes to a temporary file in the destination directory, is
flushed and fsync'ed, then renamed over `path` with :func:`os.replace`. A crash leaves
either the old checkpoint or the new one, never a half-written file.

This module imports only numpy and the standard library.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CheckpointError",
    "FORMAT_KEY",
    "FORMAT_VERSION",
    "META_KEY",
    "save_checkpoint",
    "load_checkpoint",
]

FORMAT_KEY = "__symgraph_checkpoint__"
META_KEY = "__symgraph_meta__"
FORMAT_VERSION = 1
_RESERVED_PREFIX = "__symgraph"
_ZIP_MAGIC = b"PK\x03\x04"
_NPY_MAGIC = b"\x93NUMPY"


class CheckpointError(ValueError):
    """A checkpoint cannot be written or read; the message names the path and the reason."""


def _check_key(key: object) -> str:
    if not isinstance(key, str) or key == "":
        raise CheckpointError(f"checkpoint array names must be non-empty str, got {key!r}")
    if "\0" in key:
        raise CheckpointError(f"checkpoint array name {key!r} contains a NUL character")
    if key.endswith(".npy"):
        raise CheckpointError(
            f"checkpoint array name {key!r} ends with '.npy', which numpy.load strips and "
            "could confuse with another name; rename it"
        )
    if key.startswith(_RESERVED_PREFIX):
        raise CheckpointError(
            f"checkpoint array name {key!r} is reserved (names starting with "
            f"{_RESERVED_PREFIX!r} are used by the format)"
        )
    return key


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def save_checkpoint(
    path: str | os.PathLike[str],
    arrays: Mapping[str, np.ndarray],
    meta: Mapping[str, Any],
    compress: bool = False,
) -> Path:
    """Write `arrays` and `meta` atomically to one ``.npz`` file.

    Parameters
    ----------
    path : str or os.PathLike
        Destination, written exactly there (no ``.npz`` suffix is added). Its directory must
        exist. An existing file is replaced atomically.
    arrays : mapping of str to array_like
        Named arrays, e.g. ``{'params/lstm.W': W, 'vocab/tokens': tokens}``. Names may hold
        ``/`` and any character except NUL, must not end with ``'.npy'`` and must not
        start with ``'__symgraph'``.
        Object arrays are refused.
    meta : mapping
        JSON-serialisable metadata (config, epoch, losses). It comes back as
        ``json.loads(json.dumps(meta))``: tuples become lists, keys become strings.
    compress : bool
        Deflate the members (smaller, slower).

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    CheckpointError
        For a bad name, an object array, metadata that is not JSON-serialisable, or a
        write failure (then the previous file at `path`, if any, is left untouched).
    """
    dest = Path(path)
    if not isinstance(meta, Mapping):
        raise CheckpointError(f"checkpoint meta must be a dict, got {type(meta).__name__}")
    try:
        meta_json = json.dumps(dict(meta), sort_keys=True)
    except (TypeError, ValueError) as e:
        raise CheckpointError(
            f"checkpoint meta for {str(dest)!r} is not JSON-serialisable: {e}"
        ) from e
    members: dict[str, np.ndarray] = {}
    for key, value in arrays.items():
        arr = np.asarray(value)
        if arr.dtype.hasobject:
            raise CheckpointError(
                f"checkpoint array {key!r} has dtype {arr.dtype}; object arrays need pickle "
                "and are not stored (use numeric or unicode arrays)"
            )
        members[_check_key(key)] = arr
    members[FORMAT_KEY] = np.array(FORMAT_VERSION, dtype=np.int64)
    members[META_KEY] = np.array(meta_json)

    directory = dest.parent if str(dest.parent) else Path(".")
    if not directory.is_dir():
        raise CheckpointError(
            f"cannot write checkpoint {str(dest)!r}: directory {str(directory)!r} does not exist"
        )
    compression = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=directory)
    except OSError as e:
        raise CheckpointError(f"cannot write checkpoint {str(dest)!r}: {e}") from e
    try:
        with os.fdopen(fd, "wb") as f:
            with zipfile.ZipFile(f, "w", compression=compression, allowZip64=True) as zf:
                for key, arr in members.items():
                    with zf.open(key + ".npy", "w", force_zip64=True) as member:
                        np.lib.format.write_array(member, arr, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp_name, 0o666 & ~_current_umask())
        os.replace(tmp_name, dest)
    except BaseException as e:
        try:
            os.unlink(tmp_name)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise CheckpointError(f"cannot write checkpoint {str(dest)!r}: {e}") from e
        raise
    _fsync_directory(directory)
    return dest


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable (POSIX); best effort elsewhere."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], dict]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Uses ``numpy.load(path, allow_pickle=False)``; nothing is unpickled.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    arrays : dict of str to numpy.ndarray
        The stored arrays, in the order they were written.
    meta : dict
        The metadata.

    Raises
    ------
    CheckpointError
        With the path and the reason: missing file, not an ``.npz`` (corrupt or truncated),
        not a symgraph checkpoint, a newer format version, unparsable metadata, or an
        object (pickled) array.
    """
    p = Path(path)
    where = repr(str(p))
    if not p.exists():
        raise CheckpointError(f"checkpoint not found: {where}")
    if p.is_dir():
        raise CheckpointError(f"checkpoint path {where} is a directory, expected an .npz file")
    try:
        with open(p, "rb") as f:
            head = f.read(len(_NPY_MAGIC))
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {where}: {e}") from e
    if head.startswith(_NPY_MAGIC):
        raise CheckpointError(
            f"{where} is a single .npy array, not a symgraph checkpoint (.npz archive)"
        )
    if not head.startswith(_ZIP_MAGIC):
        raise CheckpointError(
            f"{where} is not an .npz checkpoint: it does not start with the zip signature "
            f"(first bytes {head[:4]!r}); the file is corrupt or of another kind"
        )
    try:
        with np.load(p, allow_pickle=False) as npz:
            names = list(npz.files)
            if FORMAT_KEY not in names:
                shown = ", ".join(repr(n) for n in names[:5]) + (", ..." if len(names) > 5 else "")
                raise CheckpointError(
                    f"{where} is not a symgraph checkpoint: it has no {FORMAT_KEY!r} entry "
                    f"(it holds {shown or 'nothing'})"
                )
            _check_version(npz[FORMAT_KEY], where)
            if META_KEY not in names:
                raise CheckpointError(f"checkpoint {where} has no {META_KEY!r} entry")
            meta = _parse_meta(npz[META_KEY], where)
            arrays = {}
            for name in names:
                if name in (FORMAT_KEY, META_KEY):
                    continue
                arrays[name] = _read_member(npz, name, where)
    except CheckpointError:
        raise
    except Exception as e:  # a damaged archive fails in many ways inside zipfile and numpy
        raise CheckpointError(
            f"checkpoint {where} is corrupt or truncated: {type(e).__name__}: {e}"
        ) from e
    return arrays, meta


def _read_member(npz: Any, name: str, where: str) -> np.ndarray:
    try:
        value = npz[name]
    except ValueError as e:
        if "allow_pickle" in str(e) or "Object arrays" in str(e):
            raise CheckpointError(
                f"checkpoint {where} entry {name!r} is an object (pickled) array; "
                "symgraph checkpoints hold only numeric and unicode arrays"
            ) from e
        raise
    if not isinstance(value, np.ndarray):
        raise CheckpointError(f"checkpoint {where} entry {name!r} is not a .npy array")
    return value


def _check_version(value: np.ndarray, where: str) -> None:
    if value.shape != () or value.dtype.kind not in "iu":
        raise CheckpointError(
            f"checkpoint {where} has a malformed {FORMAT_KEY!r} entry: expected a 0-d integer "
            f"array, got dtype {value.dtype} shape {value.shape}"
        )
    version = int(value)
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {where} has format version {version}, newer than this symgraph "
            f"reads (up to {FORMAT_VERSION}); upgrade symgraph"
        )
    if version < 1:
        raise CheckpointError(f"checkpoint {where} has an invalid format version {version}")


def _parse_meta(value: np.ndarray, where: str) -> dict:
    if value.shape != () or value.dtype.kind != "U":
        raise CheckpointError(
            f"checkpoint {where} has a malformed {META_KEY!r} entry: expected a 0-d unicode "
            f"array holding JSON, got dtype {value.dtype} shape {value.shape}"
        )
    try:
        meta = json.loads(str(value))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"checkpoint {where} metadata is not valid JSON: {e}") from e
    if not isinstance(meta, dict):
        raise CheckpointError(
            f"checkpoint {where} metadata must be a JSON object, got {type(meta).__name__}"
        )
    return meta
