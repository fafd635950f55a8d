"""Dataset files: round trip, atomic writes, and every kind of damage refused with its
own message."""

import dataclasses
import json
import os

import numpy as np
import pytest

from common import dataset as ds


def make_dataset(with_labels=True, n=5, t=7):
    rng = np.random.default_rng(0)
    return ds.Dataset(
        observations=rng.normal(size=(n, t, 3)).astype(np.float32),
        actions=rng.normal(size=(n, t, 2)).astype(np.float32),
        features=rng.normal(size=(n, t, 4)).astype(np.float32),
        lengths=rng.integers(1, t + 1, size=n).astype(np.int32),
        env_id="pointnav",
        env_kwargs={"dim": 2, "num_goals": 4},
        task_labels=rng.normal(size=(n, 2)).astype(np.float32) if with_labels else None,
        metadata={"expert": "pointnav", "noise": 0.1},
    )


def rewrite(path, mutate):
    """Rewrite an npz with `mutate(arrays)` applied, keeping everything else."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    mutate(arrays)
    np.savez(path, **arrays)


def set_header(arrays, **changes):
    header = json.loads(arrays[ds.HEADER_KEY].tobytes().decode())
    header.update(changes)
    arrays[ds.HEADER_KEY] = np.frombuffer(json.dumps(header).encode(), np.uint8)


@pytest.mark.parametrize("with_labels", [True, False])
def test_round_trip_keeps_every_array_and_the_header(tmp_path, with_labels):
    data = make_dataset(with_labels)
    path = str(tmp_path / "demos.npz")
    ds.save(path, data)
    loaded = ds.load(path)
    for name in ds.ARRAY_ORDER:
        expected, actual = getattr(data, name), getattr(loaded, name)
        if expected is None:
            assert actual is None
        else:
            assert actual.dtype == expected.dtype
            np.testing.assert_array_equal(actual, expected)
    assert loaded.env_id == "pointnav"
    assert loaded.env_kwargs == {"dim": 2, "num_goals": 4}
    assert loaded.metadata == {"expert": "pointnav", "noise": 0.1}
    assert loaded.without_labels().task_labels is None
    np.testing.assert_array_equal(loaded.mask().sum(axis=1), data.lengths)


def test_save_leaves_no_temporary_file_and_replaces_the_old_one(tmp_path):
    path = str(tmp_path / "demos.npz")
    ds.save(path, make_dataset(n=5))
    ds.save(path, make_dataset(n=3))
    assert os.listdir(tmp_path) == ["demos.npz"]
    assert ds.load(path).num_trajectories == 3


def test_save_refuses_inconsistent_arrays(tmp_path):
    data = make_dataset()
    bad = dataclasses.replace(data, actions=data.actions[:, :-1])
    with pytest.raises(ds.DatasetError, match="actions must be"):
        ds.save(str(tmp_path / "bad.npz"), bad)
    assert not os.listdir(tmp_path)


def test_truncated_file_is_rejected(tmp_path):
    path = str(tmp_path / "demos.npz")
    ds.save(path, make_dataset())
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size // 2)
    with pytest.raises(ds.DatasetError, match="is truncated or not an npz archive"):
        ds.load(path)


def test_flipped_byte_in_array_data_is_rejected(tmp_path):
    path = str(tmp_path / "demos.npz")
    data = make_dataset()
    ds.save(path, data)
    raw = bytearray(open(path, "rb").read())
    offset = raw.find(data.features.tobytes()[:16])  # npz members are stored uncompressed
    assert offset > 0
    raw[offset + 5] ^= 0xFF
    open(path, "wb").write(bytes(raw))
    with pytest.raises(ds.DatasetError, match="corrupt: a stored array fails its CRC check"):
        ds.load(path)


def test_array_changed_behind_the_header_fails_the_checksum(tmp_path):
    path = str(tmp_path / "demos.npz")
    ds.save(path, make_dataset())

    def nudge(arrays):
        arrays["actions"] = arrays["actions"] + np.float32(1e-3)

    rewrite(path, nudge)
    with pytest.raises(ds.DatasetError, match="do not match the header checksum"):
        ds.load(path)


def test_wrong_format_version_is_rejected(tmp_path):
    path = str(tmp_path / "demos.npz")
    ds.save(path, make_dataset())
    rewrite(path, lambda arrays: set_header(arrays, format_version=ds.FORMAT_VERSION + 1))
    with pytest.raises(ds.DatasetError, match="format version 2; this code reads version 1"):
        ds.load(path)


def test_wrong_dtype_is_named(tmp_path):
    path = str(tmp_path / "demos.npz")
    ds.save(path, make_dataset())

    def to_float64(arrays):
        arrays["observations"] = arrays["observations"].astype(np.float64)

    rewrite(path, to_float64)
    with pytest.raises(ds.DatasetError, match="'observations' is .*float64.*the header says"):
        ds.load(path)


def test_shape_disagreeing_with_the_header_is_named(tmp_path):
    path = str(tmp_path / "demos.npz")
    ds.save(path, make_dataset())

    def drop_trajectory(arrays):
        arrays["lengths"] = arrays["lengths"][:-1]

    rewrite(path, drop_trajectory)
    with pytest.raises(ds.DatasetError, match="array 'lengths' is .*the header says"):
        ds.load(path)


def test_missing_header_and_foreign_npz_are_rejected(tmp_path):
    path = str(tmp_path / "other.npz")
    np.savez(path, x=np.zeros(3))
    with pytest.raises(ds.DatasetError, match="has no header"):
        ds.load(path)
    with pytest.raises(ds.DatasetError, match="no dataset file"):
        ds.load(str(tmp_path / "absent.npz"))


def test_lengths_out_of_range_are_rejected(tmp_path):
    data = make_dataset()
    bad = dataclasses.replace(data, lengths=np.zeros_like(data.lengths))
    with pytest.raises(ds.DatasetError, match="lengths must lie in 1..7"):
        ds.save(str(tmp_path / "bad.npz"), bad)
