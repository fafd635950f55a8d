"""Data parallelism over JAX devices and processes, with `jax.sharding`.

A run on D devices places its training state on a one-axis mesh named `data`:

- per-env state is split over devices along the env axis: the fields
  `env_state` and `episode_return` of a training state (axis 0 of each leaf) and
  the replay buffer's `data` and `step` (axis 1: rows, then envs), so each
  device steps and stores its own `num_envs / D` envs;
- every other leaf (parameters, optimiser moments, normalisers, keys, counters)
  is replicated;
- the replay buffer's `gather` places the sampled batch split over devices along
  its rows (`split_batch`), so each device runs the update on `batch_size / D`
  rows and XLA averages the gradients with an all-reduce.

The program itself is the one-device program: XLA's SPMD partitioner inserts the
collectives, and random numbers do not depend on the layout, so the same seed
gives the same metrics on 1 or D devices up to float rounding (tested).

Several processes (hosts) join through `jax.distributed.initialize`; the mesh
then spans every process's devices and each process holds its share of the
envs and the buffer. A checkpoint `gather`s the split leaves whole (a collective
every process joins) for process 0 to write; a resumed run reads it whole in
every process and `place`s each process's shares without any collective.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

AXIS = "data"
# Fields of a training state whose leaves run over envs, and the axis they do it on.
ENV_AXIS_FIELDS = {"env_state": 0, "episode_return": 0}
BUFFER_FIELD, BUFFER_ENV_AXIS = "buffer", 1


def initialize(coordinator_address: str, num_processes: int, process_id: int) -> None:
    """Join a multi-process run; CPU devices of different processes talk through gloo.
    Must run before anything touches a device."""
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=coordinator_address, num_processes=num_processes, process_id=process_id
    )


def make_mesh(num_devices: int) -> Mesh:
    """A one-axis mesh over the first `num_devices` devices of every process."""
    devices = np.asarray(jax.devices()[:num_devices])
    return Mesh(devices, (AXIS,), axis_types=(AxisType.Auto,))


def env_axis(path: tuple, leaf_ndim: int) -> int | None:
    """The env axis of a leaf of ONE seed's training state, from its field names."""
    names = [getattr(p, "name", None) for p in path]
    for field, axis in ENV_AXIS_FIELDS.items():
        if field in names:
            return axis
    if BUFFER_FIELD in names and leaf_ndim > BUFFER_ENV_AXIS:
        return BUFFER_ENV_AXIS  # the buffer's data and step arrays; pos and full are scalars
    return None


def has_env_axis(state: Any) -> bool:
    """Whether a training state names per-env fields that can be split over devices."""
    flat = jax.tree_util.tree_flatten_with_path(state)[0]
    return any(env_axis(path, np.ndim(leaf)) is not None for path, leaf in flat)


def state_shardings(state: Any, mesh: Mesh, seed_axis: bool) -> Any:
    """NamedShardings for a training state (shapes or arrays); `seed_axis`: the leaves
    carry a leading axis over seeds, which stays whole on every device."""
    lead = 1 if seed_axis else 0

    def sharding(path, leaf):
        ndim = len(leaf.shape)
        axis = env_axis(path, ndim - lead)
        if axis is None:
            return NamedSharding(mesh, P())
        return NamedSharding(mesh, P(*[None] * (lead + axis), AXIS))

    return jax.tree_util.tree_map_with_path(sharding, state)


def split_batch(tree: Any) -> Any:
    """Place a batch split over the devices of the current mesh along its first axis;
    unchanged when no mesh with a `data` axis is set (one device)."""
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or AXIS not in mesh.axis_names or mesh.shape[AXIS] == 1:
        return tree
    return jax.lax.with_sharding_constraint(tree, P(AXIS))


def to_host(tree: Any) -> Any:
    """NumPy copies of replicated arrays, also of arrays that span other processes."""

    def fetch(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return np.asarray(x.addressable_data(0))
        return np.asarray(jax.device_get(x))

    return jax.tree.map(fetch, tree)


def gather(tree: Any) -> Any:
    """NumPy copies of whole arrays, also of arrays split over other processes: those are
    gathered into every process, so every process must call it with the same tree."""

    def fetch(x):
        if not isinstance(x, jax.Array) or x.is_fully_addressable:
            return np.asarray(x)
        if x.sharding.is_fully_replicated:
            return np.asarray(x.addressable_data(0))
        return multihost_utils.process_allgather(x, tiled=True)

    return jax.tree.map(fetch, tree)


def place(tree: Any, shardings: Any) -> Any:
    """Host arrays (the same in every process) put on `shardings`. A sharding that spans
    other processes gets only this process's shards, cut from the host array: no collective
    (`jax.device_put` would compare the whole array across processes)."""
    if jax.process_count() == 1:
        return jax.device_put(tree, shardings)

    def put(x, sharding):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            data = put(jax.random.key_data(x), sharding)
            return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
        value = np.asarray(x)
        return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])

    return jax.tree.map(put, tree, shardings)
