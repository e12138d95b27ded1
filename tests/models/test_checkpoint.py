"""Tests for symgraph.models.checkpoint."""

import json
import os
import zipfile

import numpy as np
import pytest

from symgraph.models import checkpoint
from symgraph.models.checkpoint import (
    FORMAT_KEY,
    FORMAT_VERSION,
    META_KEY,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)

META = {"epoch": 3, "lr": 0.5, "config": {"hidden": [128, 64], "cell": "lstm"}, "best": None}


def sample_arrays():
    rng = np.random.default_rng(0)
    return {
        "params/lstm.W": rng.standard_normal((4, 8)).astype(np.float32),
        "params/lstm.b": np.zeros(8, dtype=np.float64),
        "vocab/tokens": np.array(["<pad>", "a", "é"]),
        "step": np.array(12, dtype=np.int64),
        "empty": np.zeros((0, 3), dtype=np.int32),
        "mask": np.array([True, False]),
        "file": np.arange(3),  # names that are also np.savez keyword arguments
        "allow_pickle": np.arange(2),
        "ünïcode key/with spaces": np.ones(1),
    }


def assert_same_arrays(got, expected):
    assert list(got) == list(expected)
    for key, value in expected.items():
        assert got[key].dtype == value.dtype, key
        np.testing.assert_array_equal(got[key], value)


def leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_round_trip(tmp_path):
    path = tmp_path / "model.npz"
    assert save_checkpoint(path, sample_arrays(), META) == path
    arrays, meta = load_checkpoint(path)
    assert_same_arrays(arrays, sample_arrays())
    assert meta == META
    assert leftovers(tmp_path) == []


def test_file_is_a_plain_npz_with_marker(tmp_path):
    path = tmp_path / "model.npz"
    save_checkpoint(str(path), {"a/b": np.arange(3)}, {"x": 1})
    with np.load(path, allow_pickle=False) as npz:
        assert sorted(npz.files) == sorted(["a/b", FORMAT_KEY, META_KEY])
        assert int(npz[FORMAT_KEY]) == FORMAT_VERSION
        assert npz[META_KEY].dtype.kind == "U"
        assert json.loads(str(npz[META_KEY])) == {"x": 1}


def test_path_is_used_exactly_and_compression_works(tmp_path):
    path = tmp_path / "ckpt.bin"
    save_checkpoint(path, {"w": np.zeros(1000)}, {}, compress=True)
    assert os.listdir(tmp_path) == ["ckpt.bin"]
    assert path.stat().st_size < 1000
    arrays, meta = load_checkpoint(path)
    np.testing.assert_array_equal(arrays["w"], np.zeros(1000))
    assert meta == {}


def test_overwrite_replaces_the_old_checkpoint(tmp_path):
    path = tmp_path / "model.npz"
    save_checkpoint(path, {"w": np.ones(2)}, {"epoch": 1})
    save_checkpoint(path, {"v": np.zeros(3)}, {"epoch": 2})
    arrays, meta = load_checkpoint(path)
    assert list(arrays) == ["v"] and meta == {"epoch": 2}


def test_failed_rename_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    save_checkpoint(path, {"w": np.ones(2)}, {"epoch": 1})
    before = path.read_bytes()

    def fail_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.os, "replace", fail_replace)
    with pytest.raises(CheckpointError, match="model.npz.*No space left"):
        save_checkpoint(path, {"w": np.zeros(2)}, {"epoch": 2})
    assert path.read_bytes() == before
    assert leftovers(tmp_path) == []
    monkeypatch.undo()
    assert load_checkpoint(path)[1] == {"epoch": 1}


def test_crash_in_the_middle_of_writing_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    save_checkpoint(path, {"w": np.ones(2)}, {"epoch": 1})
    before = path.read_bytes()
    real_write_array = np.lib.format.write_array
    calls = []

    def write_then_crash(fp, array, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            fp.write(b"partial")
            raise KeyboardInterrupt
        return real_write_array(fp, array, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", write_then_crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"a": np.ones(5), "b": np.ones(5)}, {"epoch": 2})
    assert len(calls) == 2
    assert path.read_bytes() == before
    assert leftovers(tmp_path) == []


def test_new_file_failure_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError("EIO")))
    with pytest.raises(CheckpointError, match="EIO"):
        save_checkpoint(tmp_path / "new.npz", {"w": np.ones(2)}, {})
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------------- save errors


@pytest.mark.parametrize(
    ("arrays", "meta", "message"),
    [
        ({"o": np.array([{}, 1], dtype=object)}, {}, "'o' has dtype object"),
        ({"w": np.ones(1)}, {"bad": {1, 2}}, "not JSON-serialisable"),
        ({"w": np.ones(1)}, [1, 2], "meta must be a dict"),
        ({FORMAT_KEY: np.ones(1)}, {}, "reserved"),
        ({"__symgraph_x": np.ones(1)}, {}, "reserved"),
        ({"w.npy": np.ones(1)}, {}, "ends with '.npy'"),
        ({"a\0b": np.ones(1)}, {}, "NUL"),
        ({"": np.ones(1)}, {}, "non-empty str"),
        ({3: np.ones(1)}, {}, "non-empty str"),
    ],
)
def test_save_rejects_bad_input(tmp_path, arrays, meta, message):
    with pytest.raises(CheckpointError, match=message):
        save_checkpoint(tmp_path / "m.npz", arrays, meta)
    assert os.listdir(tmp_path) == []


def test_save_into_missing_directory(tmp_path):
    with pytest.raises(CheckpointError, match="directory .*nodir.* does not exist"):
        save_checkpoint(tmp_path / "nodir" / "m.npz", {}, {})


# ------------------------------------------------------------------------- load errors


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(CheckpointError, match="not found.*absent.npz"):
        load_checkpoint(tmp_path / "absent.npz")
    with pytest.raises(CheckpointError, match="is a directory"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize("content", [b"", b"hello world, not a zip", bytes(range(256)) * 4])
def test_not_a_zip(tmp_path, content):
    path = tmp_path / "junk.npz"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="junk.npz.*not an .npz checkpoint.*zip signature"):
        load_checkpoint(path)


def test_random_bytes_after_zip_magic(tmp_path):
    path = tmp_path / "junk.npz"
    path.write_bytes(b"PK\x03\x04" + np.random.default_rng(0).bytes(500))
    with pytest.raises(CheckpointError, match="junk.npz.*corrupt or truncated"):
        load_checkpoint(path)


def test_every_truncation_is_reported(tmp_path):
    path = tmp_path / "model.npz"
    save_checkpoint(path, {"w": np.arange(50.0)}, META)
    data = path.read_bytes()
    cut = tmp_path / "cut.npz"
    for n in range(0, len(data), 7):
        cut.write_bytes(data[:n])
        with pytest.raises(CheckpointError, match="cut.npz"):
            load_checkpoint(cut)


def test_flipped_data_byte_is_caught_by_crc(tmp_path):
    path = tmp_path / "model.npz"
    save_checkpoint(path, {"w": np.arange(100.0)}, {})
    data = bytearray(path.read_bytes())
    offset = bytes(data).index(np.arange(100.0).tobytes()[8:16])
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt or truncated.*CRC"):
        load_checkpoint(path)


def test_foreign_npz_and_npy(tmp_path):
    np.savez(tmp_path / "foreign.npz", weights=np.ones(3), bias=np.zeros(1))
    with pytest.raises(CheckpointError, match="not a symgraph checkpoint.*'weights'"):
        load_checkpoint(tmp_path / "foreign.npz")
    np.save(tmp_path / "single.npy", np.ones(3))
    with pytest.raises(CheckpointError, match="single .npy array"):
        load_checkpoint(tmp_path / "single.npy")


def write_raw(path, members, allow_pickle=False):
    np.savez(path, **members, allow_pickle=allow_pickle)


def test_newer_format_version(tmp_path):
    path = tmp_path / "future.npz"
    write_raw(path, {FORMAT_KEY: np.array(FORMAT_VERSION + 1), META_KEY: np.array("{}")})
    with pytest.raises(CheckpointError, match="future.npz.*format version 2, newer"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({FORMAT_KEY: np.array(0), META_KEY: np.array("{}")}, "invalid format version 0"),
        ({FORMAT_KEY: np.array([1]), META_KEY: np.array("{}")}, "malformed"),
        ({FORMAT_KEY: np.array(1)}, "no '__symgraph_meta__'"),
        ({FORMAT_KEY: np.array(1), META_KEY: np.array("{not json")}, "not valid JSON"),
        ({FORMAT_KEY: np.array(1), META_KEY: np.array("[1, 2]")}, "must be a JSON object"),
        ({FORMAT_KEY: np.array(1), META_KEY: np.array(3.0)}, "malformed"),
    ],
)
def test_bad_marker_or_meta(tmp_path, members, message):
    path = tmp_path / "bad.npz"
    write_raw(path, members)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_object_arrays_are_not_unpickled(tmp_path, monkeypatch):
    path = tmp_path / "pickled.npz"
    members = {
        FORMAT_KEY: np.array(1),
        META_KEY: np.array("{}"),
        "evil": np.array([{"a": 1}], dtype=object),
    }
    write_raw(path, members, allow_pickle=True)
    real_load = np.load
    seen = []

    def spy_load(*args, **kwargs):
        seen.append(kwargs.get("allow_pickle"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(np, "load", spy_load)
    with pytest.raises(CheckpointError, match="pickled.npz.*'evil' is an object"):
        load_checkpoint(path)
    assert seen == [False]


def test_non_npy_member(tmp_path):
    path = tmp_path / "odd.npz"
    write_raw(path, {FORMAT_KEY: np.array(1), META_KEY: np.array("{}")})
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("notes.txt", "hello")
    with pytest.raises(CheckpointError, match="'notes.txt' is not a .npy array"):
        load_checkpoint(path)


def test_checkpoint_error_is_a_value_error():
    assert issubclass(CheckpointError, ValueError)
