"""Trajectory datasets on disk: one `.npz` file of plain arrays, never pickles.

A dataset holds N trajectories padded to T steps:

    observations  (N, T, obs_dim)      float32  s_t, the observation acted on
    actions       (N, T, action_dim)   float32  a_t
    features      (N, T, feature_dim)  float32  features of s_{t+1}, the state a_t reached
    lengths       (N,)                 int32    valid steps of each trajectory, 1..T
    task_labels   (N, task_dim)        float32  optional: the tasks the demonstrations were
                                                collected for, for evaluation only

Steps t >= lengths[i] are padding (zeros). The file also holds `header`, a JSON
document stored as a uint8 array:

    format_version, kind, env_id, env_kwargs, num_trajectories, max_length,
    arrays {name: {shape, dtype}}, sha256 (of the arrays, in ARRAY_ORDER), metadata

`load` checks every one of these and raises `DatasetError` with one sentence
naming what is wrong; a truncated, corrupt or foreign file never loads. `save`
writes a temporary file in the target directory, fsyncs it and renames it over
the target, so a crash leaves either the old file or the new one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import zipfile
import zlib
from typing import Any

import numpy as np

FORMAT_VERSION = 1
KIND = "hindsight-jax trajectories"
ARRAY_ORDER = ("observations", "actions", "features", "lengths", "task_labels")
DTYPES = {
    "observations": np.float32,
    "actions": np.float32,
    "features": np.float32,
    "lengths": np.int32,
    "task_labels": np.float32,
}
HEADER_KEY = "header"
ZIP_MAGIC = b"PK\x03\x04"


class DatasetError(ValueError):
    """A dataset file is missing, truncated, corrupt, of another version, or inconsistent."""


@dataclasses.dataclass(frozen=True)
class Dataset:
    observations: np.ndarray  # (N, T, obs_dim)
    actions: np.ndarray  # (N, T, action_dim)
    features: np.ndarray  # (N, T, feature_dim)
    lengths: np.ndarray  # (N,) valid steps per trajectory
    env_id: str
    env_kwargs: dict[str, Any]
    task_labels: np.ndarray | None = None  # (N, task_dim) evaluation only
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def num_trajectories(self) -> int:
        return self.observations.shape[0]

    @property
    def max_length(self) -> int:
        return self.observations.shape[1]

    def mask(self) -> np.ndarray:
        """(N, T) bool, True on valid steps."""
        return np.arange(self.max_length)[None, :] < self.lengths[:, None]

    def without_labels(self) -> Dataset:
        return dataclasses.replace(self, task_labels=None)

    def arrays(self) -> dict[str, np.ndarray]:
        present = {name: getattr(self, name) for name in ARRAY_ORDER}
        return {name: value for name, value in present.items() if value is not None}


def _checksum(arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in ARRAY_ORDER:
        if name in arrays:
            array = np.ascontiguousarray(arrays[name])
            digest.update(name.encode())
            digest.update(str(array.shape).encode())
            digest.update(array.tobytes())
    return digest.hexdigest()


def validate(arrays: dict[str, np.ndarray]) -> None:
    """Dtypes, ranks, shared (N, T) leading shapes and lengths in 1..T; raises DatasetError."""
    for name in ("observations", "actions", "features", "lengths"):
        if name not in arrays:
            raise DatasetError(f"dataset has no {name!r} array")
    unknown = sorted(set(arrays) - set(ARRAY_ORDER))
    if unknown:
        raise DatasetError(f"dataset has unknown arrays {unknown}")
    for name, array in arrays.items():
        if array.dtype != DTYPES[name]:
            raise DatasetError(
                f"array {name!r} has dtype {array.dtype}, expected {np.dtype(DTYPES[name])}"
            )
    observations = arrays["observations"]
    if observations.ndim != 3:
        raise DatasetError(f"observations must be (N, T, obs_dim), got shape {observations.shape}")
    n, t = observations.shape[:2]
    for name in ("actions", "features"):
        shape = arrays[name].shape
        if len(shape) != 3 or shape[:2] != (n, t):
            raise DatasetError(f"{name} must be ({n}, {t}, dim) like observations, got {shape}")
    if arrays["lengths"].shape != (n,):
        raise DatasetError(f"lengths must have shape ({n},), got {arrays['lengths'].shape}")
    labels = arrays.get("task_labels")
    if labels is not None and (labels.ndim != 2 or labels.shape[0] != n):
        raise DatasetError(f"task_labels must be ({n}, task_dim), got {labels.shape}")
    if n == 0 or t == 0:
        raise DatasetError(f"dataset is empty: {n} trajectories of {t} steps")
    lengths = arrays["lengths"]
    if lengths.min() < 1 or lengths.max() > t:
        raise DatasetError(
            f"lengths must lie in 1..{t}, got values from {lengths.min()} to {lengths.max()}"
        )
    for name in ("observations", "actions", "features", "task_labels"):
        if name in arrays and not np.all(np.isfinite(arrays[name])):
            raise DatasetError(f"array {name!r} holds NaN or infinite values")


def save(path: str, dataset: Dataset) -> None:
    """Write `dataset` to `path` (a .npz) atomically: temp file, fsync, rename."""
    arrays = {name: np.asarray(value) for name, value in dataset.arrays().items()}
    validate(arrays)
    header = {
        "format_version": FORMAT_VERSION,
        "kind": KIND,
        "env_id": dataset.env_id,
        "env_kwargs": dataset.env_kwargs,
        "num_trajectories": dataset.num_trajectories,
        "max_length": dataset.max_length,
        "arrays": {
            name: {"shape": list(a.shape), "dtype": str(a.dtype)} for name, a in arrays.items()
        },
        "sha256": _checksum(arrays),
        "metadata": dataset.metadata,
    }
    blob = np.frombuffer(json.dumps(header, sort_keys=True).encode(), dtype=np.uint8)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **{HEADER_KEY: blob}, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _read_header(blob: np.ndarray, path: str) -> dict[str, Any]:
    if blob.dtype != np.uint8 or blob.ndim != 1:
        raise DatasetError(f"{path}: the header is not a JSON byte string")
    try:
        header = json.loads(blob.tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise DatasetError(f"{path}: the header is not valid JSON") from None
    if not isinstance(header, dict) or header.get("kind") != KIND:
        raise DatasetError(f"{path} is not a {KIND} file (header kind {header.get('kind')!r})")
    return header


def load(path: str) -> Dataset:
    """Read and check a dataset file; raises DatasetError naming the first problem."""
    if not os.path.exists(path):
        raise DatasetError(f"no dataset file at {path}")
    if os.path.isdir(path):
        raise DatasetError(f"{path} is a directory, not a dataset file")
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as err:
        raise DatasetError(f"{path} cannot be read ({err.strerror})") from None
    if magic != ZIP_MAGIC:
        raise DatasetError(f"{path} is truncated or not an npz archive (no zip signature)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            names = set(npz.files)
            if HEADER_KEY not in names:
                raise DatasetError(f"{path} has no header; it is not a dataset file")
            header = _read_header(npz[HEADER_KEY], path)
            version = header.get("format_version")
            if version != FORMAT_VERSION:
                raise DatasetError(
                    f"{path} has dataset format version {version}; this code reads version "
                    f"{FORMAT_VERSION}"
                )
            arrays = {name: npz[name] for name in sorted(names - {HEADER_KEY})}
    except DatasetError:
        raise
    except zipfile.BadZipFile as err:
        if "CRC" in str(err):
            raise DatasetError(f"{path} is corrupt: a stored array fails its CRC check") from None
        raise DatasetError(f"{path} is truncated or not an npz archive ({err})") from None
    except (OSError, EOFError, ValueError, zlib.error) as err:
        raise DatasetError(f"{path} is truncated or corrupt ({err})") from None
    header.setdefault("metadata", {})
    for key, kind in (("env_id", str), ("env_kwargs", dict), ("arrays", dict), ("metadata", dict)):
        if not isinstance(header.get(key), kind):
            raise DatasetError(f"{path}: the header's {key!r} is not a {kind.__name__}")
    declared = header["arrays"]
    if sorted(declared) != sorted(arrays):
        raise DatasetError(
            f"{path}: header lists arrays {sorted(declared)} but the file holds {sorted(arrays)}"
        )
    for name, spec in declared.items():
        actual = {"shape": list(arrays[name].shape), "dtype": str(arrays[name].dtype)}
        if spec != actual:
            raise DatasetError(f"{path}: array {name!r} is {actual}, the header says {spec}")
    validate(arrays)
    if _checksum(arrays) != header.get("sha256"):
        raise DatasetError(f"{path} is corrupt: its arrays do not match the header checksum")
    return Dataset(
        observations=arrays["observations"],
        actions=arrays["actions"],
        features=arrays["features"],
        lengths=arrays["lengths"],
        env_id=header["env_id"],
        env_kwargs=header["env_kwargs"],
        task_labels=arrays.get("task_labels"),
        metadata=header["metadata"],
    )
