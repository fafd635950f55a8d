"""Checkpoints of a training state: orbax arrays plus a JSON header, never pickles.

A checkpoint is a directory:

    <path>/state/          orbax StandardCheckpointer: a flat dict {leaf path: array}
    <path>/metadata.json   format_version, algo, args, env_steps, prng_keys, crc32, files, ...

Leaves are keyed by `jax.tree_util.keystr` and rebuilt with the target's tree structure, so
flax struct dataclasses, NamedTuples and optax states round-trip exactly and a mismatch is
named by its leaf path. Typed PRNG keys are stored as key data and re-wrapped on load with
the implementation recorded in `prng_keys`. A CRC32 per leaf (`crc32`) catches damaged data
that orbax would read back silently (its zstd chunks carry no checksum). `files` lists every
file orbax wrote with its size and CRC32: `load` checks them before orbax reads any, so a
missing, truncated or damaged file is refused in one sentence (orbax, given one, can print
tracebacks from its event loop on the way out).

Several processes (`jax.distributed`): every process calls `save`. The leaves split over
processes are gathered whole into every process's host memory (`parallel.gather`, a
collective), then process 0 alone writes, with orbax told that it is the only process taking
part (so orbax waits for no other), and tells the others whether it succeeded. `load` needs no
other process: each reads the whole checkpoint from a filesystem they share and returns NumPy
arrays, which `parallel.place` puts on a mesh spanning the processes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import zlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from common import parallel

FORMAT_VERSION = 1
STATE_DIR = "state"
METADATA_FILE = "metadata.json"


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, or does not fit the run that loads it."""


def _json_default(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    return str(value)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=_json_default))


def _leaves(tree: Any) -> dict[str, Any]:
    """{keystr path: leaf}, with Python scalars as NumPy arrays."""
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {
        jax.tree_util.keystr(path): leaf if hasattr(leaf, "dtype") else np.asarray(leaf)
        for path, leaf in flat
    }


def _is_prng_key(leaf: Any) -> bool:
    return jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def _abstract(leaf: Any) -> jax.ShapeDtypeStruct:
    """What orbax should restore for a target leaf (key data for typed keys)."""
    if isinstance(leaf, jax.Array):
        data = jax.random.key_data(leaf) if _is_prng_key(leaf) else leaf
        return jax.ShapeDtypeStruct(data.shape, data.dtype, sharding=data.sharding)
    if _is_prng_key(leaf):
        return jax.eval_shape(jax.random.key_data, leaf)
    return jax.ShapeDtypeStruct(leaf.shape, leaf.dtype)


def _host(want: jax.ShapeDtypeStruct) -> np.ndarray:
    """A restore target that orbax reads whole into host memory, whatever sharding the
    checkpoint was written with (a broadcast zero: it allocates nothing)."""
    return np.broadcast_to(np.zeros((), want.dtype), want.shape)


def _crc32(array: Any) -> int:
    return zlib.crc32(np.ascontiguousarray(np.asarray(array)).view(np.uint8))


def _checkpointer():
    """An orbax StandardCheckpointer that this process drives alone: in a multi-process run,
    orbax's barriers otherwise wait for every process at each save and restore. (orbax is
    imported here, not at the top: a script refusing its command line starts 0.3 s sooner.)"""
    import orbax.checkpoint as ocp

    if jax.process_count() == 1:
        return ocp.StandardCheckpointer()
    me = jax.process_index()
    options = ocp.options.MultiprocessingOptions(primary_host=me, active_processes={me})
    return ocp.StandardCheckpointer(multiprocessing_options=options)


def _file_crc32(path: str) -> int:
    crc = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            crc = zlib.crc32(chunk, crc)
    return crc


def _state_files(state_dir: str) -> dict[str, list[int]]:
    """{path relative to state_dir: [bytes, CRC32]} of every file under it."""
    files = {}
    for root, _, names in os.walk(state_dir):
        for name in names:
            full = os.path.join(root, name)
            files[os.path.relpath(full, state_dir)] = [os.path.getsize(full), _file_crc32(full)]
    return files


def _describe(shape: Any, dtype: Any) -> str:
    return f"{np.dtype(dtype).name}{list(shape)}"


# --- save


def save(path: str, state: Any, metadata: dict[str, Any]) -> None:
    """Write `state` and `metadata` (at least `algo`; also `args`, `env_steps`) to `path`.

    Written into a temporary sibling, then renamed into place; an older checkpoint at
    `path` is replaced only once the new one is complete. In a multi-process run every
    process must call it (the arrays it gathers are collectives); process 0 writes to its
    `path`, and every process returns once the checkpoint is complete, or raises.
    """
    if "algo" not in metadata:
        raise ValueError("checkpoint metadata needs an 'algo' entry naming the algorithm")
    leaves = _leaves(state)
    prng_keys = {k: str(jax.random.key_impl(x)) for k, x in leaves.items() if _is_prng_key(x)}
    arrays = {k: jax.random.key_data(x) if k in prng_keys else x for k, x in leaves.items()}
    if jax.process_count() == 1:
        _write(path, arrays, metadata, prng_keys)
        return

    arrays = parallel.gather(arrays)  # every process, every leaf, in the same order
    failure = None
    if jax.process_index() == 0:
        try:
            _write(path, arrays, metadata, prng_keys)
        except BaseException as e:  # the others wait below for word of the write
            failure = e
    failed = multihost_utils.broadcast_one_to_all(np.int32(failure is not None))
    if failure is not None:
        raise failure
    if failed:
        raise CheckpointError("process 0 could not write the checkpoint; its error says why")


def _write(
    path: str, arrays: dict[str, Any], metadata: dict[str, Any], prng_keys: dict[str, str]
) -> None:
    path = os.path.abspath(path)
    parent, name = os.path.split(path)
    tmp_path = os.path.join(parent, f".{name}.tmp")
    old_path = os.path.join(parent, f".{name}.old")
    header = {
        **_jsonable(dict(metadata)),
        "format_version": FORMAT_VERSION,
        "prng_keys": prng_keys,
        "crc32": {k: _crc32(x) for k, x in arrays.items()},
    }

    shutil.rmtree(tmp_path, ignore_errors=True)  # left over by a killed save
    os.makedirs(tmp_path)
    with _checkpointer() as checkpointer:
        checkpointer.save(os.path.join(tmp_path, STATE_DIR), arrays)
        checkpointer.wait_until_finished()
    header["files"] = _state_files(os.path.join(tmp_path, STATE_DIR))
    with open(os.path.join(tmp_path, METADATA_FILE), "w") as f:
        json.dump(header, f, indent=2)
        f.flush()
        os.fsync(f.fileno())

    # swap: between the two renames the previous checkpoint survives at old_path
    shutil.rmtree(old_path, ignore_errors=True)
    if os.path.exists(path):
        os.rename(path, old_path)
    os.rename(tmp_path, path)
    shutil.rmtree(old_path, ignore_errors=True)


# --- load


def _read_header(path: str) -> dict[str, Any]:
    if not os.path.isdir(path):
        kept = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.old")
        hint = (
            f" (an interrupted save left the previous one at {kept})" if os.path.isdir(kept) else ""
        )
        raise CheckpointError(f"no checkpoint at {path}{hint}")
    try:
        with open(os.path.join(path, METADATA_FILE)) as f:
            header = json.load(f)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint at {path} has no {METADATA_FILE}") from None
    except (OSError, ValueError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise CheckpointError(f"checkpoint at {path} has an unreadable {METADATA_FILE}: {e}") from e
    if not isinstance(header, dict) or header.get("format_version") != FORMAT_VERSION:
        version = header.get("format_version") if isinstance(header, dict) else None
        raise CheckpointError(
            f"checkpoint at {path} has format version {version!r}; "
            f"this code reads version {FORMAT_VERSION}"
        )
    kinds = {"args": dict, "prng_keys": dict, "crc32": dict, "files": dict}
    for key, kind in kinds.items():
        if key in header and not isinstance(header[key], kind):
            raise CheckpointError(
                f"checkpoint at {path} has a {METADATA_FILE} whose {key!r} is not a {kind.__name__}"
            )
    return header


def _check_files(path: str, files: dict[str, Any]) -> None:
    """Every file the header lists, present under `path`/state with its size and CRC32."""
    corrupt = f"checkpoint at {path} is corrupt or incomplete"
    for name, (size, crc) in files.items():
        full = os.path.join(path, STATE_DIR, name)
        if not os.path.isfile(full):
            raise CheckpointError(f"{corrupt}: {STATE_DIR}/{name} is missing")
        if os.path.getsize(full) != size:
            raise CheckpointError(
                f"{corrupt}: {STATE_DIR}/{name} holds {os.path.getsize(full)} bytes, not {size}"
            )
        if _file_crc32(full) != crc:
            raise CheckpointError(
                f"{corrupt}: {STATE_DIR}/{name} does not match the checksum saved with it"
            )


def read_metadata(path: str) -> dict[str, Any]:
    """The JSON header of the checkpoint at `path` (algo, args, env_steps, ...), checked for
    presence and format version only: cheap, for refusing a wrong checkpoint early."""
    return _read_header(os.path.abspath(path))


def _check_args(path: str, saved: dict[str, Any], expected: dict[str, Any]) -> None:
    expected = _jsonable(expected)
    differing = [k for k in expected if k not in saved or saved[k] != expected[k]]
    if differing:
        was = ", ".join(f"{k}={saved.get(k, '<missing>')!r}" for k in differing)
        now = ", ".join(f"{k}={expected[k]!r}" for k in differing)
        raise CheckpointError(
            f"checkpoint at {path} was written with {was}, but this run has {now}"
        )


def _check_leaves(
    path: str,
    saved: dict[str, Any],
    saved_keys: dict[str, str],
    target: dict[str, Any],
    abstract: dict[str, jax.ShapeDtypeStruct],
) -> None:
    prefix = f"checkpoint at {path} does not fit the target state"
    for name, leaf in target.items():
        if name not in saved:
            raise CheckpointError(f"{prefix}: it has no leaf {name}")
        if _is_prng_key(leaf) != (name in saved_keys):
            kind = "a typed PRNG key" if name in saved_keys else "a plain array"
            raise CheckpointError(f"{prefix}: leaf {name} was saved as {kind}")
        meta, want = saved[name], abstract[name]
        if tuple(meta.shape) != tuple(want.shape) or np.dtype(meta.dtype) != np.dtype(want.dtype):
            raise CheckpointError(
                f"{prefix} at leaf {name}: saved {_describe(meta.shape, meta.dtype)}, "
                f"expected {_describe(want.shape, want.dtype)}"
            )
    extra = [name for name in saved if name not in target]
    if extra:
        raise CheckpointError(f"{prefix}: it has leaf {extra[0]}, which the target state lacks")


def load(
    path: str, target_state: Any, expected_algo: str, expected_args: dict[str, Any] | None = None
) -> tuple[Any, dict[str, Any]]:
    """Restore a state shaped like `target_state` (concrete or `jax.eval_shape` output).

    `expected_args` holds the Args fields that fix the state's shapes; they must match the
    saved ones. Returns `(state, metadata)`; raises `CheckpointError` with one sentence.
    In a multi-process run the arrays come back whole as NumPy arrays (typed keys on this
    process's devices), for `parallel.place`; no other process takes part.
    """
    path = os.path.abspath(path)
    header = _read_header(path)
    if header.get("algo") != expected_algo:
        raise CheckpointError(
            f"checkpoint at {path} was written by {header.get('algo')}, not {expected_algo}"
        )
    if expected_args is not None:
        _check_args(path, header.get("args") or {}, expected_args)

    target = _leaves(target_state)
    abstract = {name: _abstract(leaf) for name, leaf in target.items()}
    if jax.process_count() > 1:
        abstract = {name: _host(want) for name, want in abstract.items()}
    state_dir = os.path.join(path, STATE_DIR)
    _check_files(path, header.get("files", {}))
    # orbax logs and returns None for an unreadable index, and raises many types on bad data
    corrupt = f"checkpoint at {path} is corrupt or incomplete"
    with _checkpointer() as checkpointer:
        try:
            saved = checkpointer.metadata(state_dir).item_metadata
        except Exception:
            saved = None
        if saved is None:
            raise CheckpointError(f"{corrupt}: orbax cannot read the index of {state_dir}")
        _check_leaves(path, dict(saved.tree), header.get("prng_keys", {}), target, abstract)
        try:
            restored = checkpointer.restore(state_dir, abstract)
        except Exception as e:
            reason = str(e).split(". See full")[0].splitlines()[0][:160]  # drop TensorStore spec
            raise CheckpointError(f"{corrupt}: orbax cannot read its arrays ({reason})") from None

    prng_keys, checksums = header.get("prng_keys", {}), header.get("crc32", {})
    values = []
    for name, leaf in target.items():
        value = restored[name]
        if _crc32(value) != checksums.get(name):
            raise CheckpointError(
                f"{corrupt}: leaf {name} does not match the checksum saved with it"
            )
        if name in prng_keys:
            value = jax.random.wrap_key_data(value, impl=prng_keys[name])
        elif jax.process_count() > 1:
            value = np.asarray(value)
        elif isinstance(leaf, jax.Array | jax.ShapeDtypeStruct):
            value = value if isinstance(value, jax.Array) else jnp.asarray(value)
        else:
            value = np.asarray(value)
        values.append(value)
    return jax.tree.unflatten(jax.tree.structure(target_state), values), header
