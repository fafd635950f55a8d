"""Trajectory replay buffer laid out by (time, env), pure and jit-able.

Every env writes one transition per row, so the steps of an episode sit in
consecutive rows of that env's column (wrapping around the ring). Each slot
also records its step index within its episode. From these two facts alone,
any sampled slot can find the rest of its episode inside jit:

- earlier steps: `t` rows back, unless the ring already overwrote them;
- later steps: the rows ahead whose step index keeps counting up from `t`,
  no further than the newest written row and at most `max_episode_length`.

So a step chosen within `episode_bounds` (a hindsight goal: final, future, episode,
chosen by the algorithm) never leaves the transition's own episode and never reads a
slot that was not written, even when episodes end at
different times in different envs or are still running.

Capacity is given in transitions and rounded down to whole rows of `num_envs`.
"""

from __future__ import annotations

from typing import Any

import chex
import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class BufferState:
    data: Any  # pytree of (rows, num_envs, ...) arrays
    step: jax.Array  # (rows, num_envs) int32 step index of each slot within its episode
    pos: jax.Array  # () int32 next row to write
    full: jax.Array  # () bool, every row has been written at least once
    max_episode_length: int = struct.field(pytree_node=False)


@struct.dataclass
class Index:
    row: jax.Array  # (B,) int32
    env: jax.Array  # (B,) int32


def num_rows(capacity: int, num_envs: int) -> int:
    return capacity // num_envs


def init(example: Any, num_envs: int, capacity: int, max_episode_length: int) -> BufferState:
    """An empty buffer for transitions shaped like `example` (one env, no batch dims)."""
    rows = num_rows(capacity, num_envs)
    if rows < max_episode_length:
        raise ValueError(
            f"buffer capacity {capacity} holds {rows} steps per env, fewer than one "
            f"episode ({max_episode_length} steps); raise the capacity to at least "
            f"{max_episode_length * num_envs}"
        )
    data = jax.tree.map(
        lambda x: jnp.zeros((rows, num_envs, *jnp.shape(x)), jnp.asarray(x).dtype), example
    )
    return BufferState(
        data=data,
        step=jnp.zeros((rows, num_envs), jnp.int32),
        pos=jnp.zeros((), jnp.int32),
        full=jnp.zeros((), bool),
        max_episode_length=max_episode_length,
    )


def nbytes(state: BufferState) -> int:
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves((state.data, state.step)))


def insert(state: BufferState, transition: Any, step_in_episode: jax.Array) -> BufferState:
    """Write one row: a transition per env (leaves shaped (num_envs, ...))."""
    rows = state.step.shape[0]
    chex.assert_shape(step_in_episode, state.step.shape[1:])
    data = jax.tree.map(lambda buf, x: buf.at[state.pos].set(x), state.data, transition)
    pos = state.pos + 1
    return state.replace(
        data=data,
        step=state.step.at[state.pos].set(step_in_episode.astype(jnp.int32)),
        pos=pos % rows,
        full=state.full | (pos >= rows),
    )


def size(state: BufferState) -> jax.Array:
    """Number of rows written (each row holds `num_envs` transitions)."""
    rows = state.step.shape[0]
    return jnp.where(state.full, rows, state.pos)


def _oldest_row(state: BufferState) -> jax.Array:
    return jnp.where(state.full, state.pos, 0)


def sample_index(state: BufferState, key: jax.Array, batch_size: int) -> Index:
    """Uniform over written slots. Call only once the buffer holds a row."""
    rows, num_envs = state.step.shape
    row_key, env_key = jax.random.split(key)
    offset = jax.random.randint(row_key, (batch_size,), 0, jnp.maximum(size(state), 1))
    row = (_oldest_row(state) + offset) % rows
    env = jax.random.randint(env_key, (batch_size,), 0, num_envs)
    return Index(row=row.astype(jnp.int32), env=env.astype(jnp.int32))


def gather(state: BufferState, index: Index) -> Any:
    """The sampled transitions, (B, ...) per field. (On several devices the scripts split
    the batch over them with `parallel.split_batch` where they call this.)"""
    return jax.tree.map(lambda x: x[index.row, index.env], state.data)


def episode_bounds(state: BufferState, index: Index) -> tuple[jax.Array, jax.Array]:
    """Per sampled slot: how many of its episode's steps lie before it (still
    stored) and after it (already written), as (back, ahead) int32 (B,)."""
    rows = state.step.shape[0]
    t0 = state.step[index.row, index.env]  # (B,)
    age = (index.row - _oldest_row(state)) % rows  # rows written before this one
    back = jnp.minimum(t0, age)
    newest = (state.pos - 1) % rows
    written_after = (newest - index.row) % rows
    k = jnp.arange(1, state.max_episode_length)  # (W-1,)
    rows_ahead = (index.row[:, None] + k) % rows  # (B, W-1)
    same = (k <= written_after[:, None]) & (
        state.step[rows_ahead, index.env[:, None]] == t0[:, None] + k
    )
    # A later episode restarts at step 0, so its steps never equal t0 + k: the matches
    # form one unbroken run from k = 1, and counting them is enough.
    ahead = jnp.sum(same, axis=1)
    return back.astype(jnp.int32), ahead.astype(jnp.int32)


def shift(state: BufferState, index: Index, offset: jax.Array) -> Index:
    """The slots `offset` (B,) steps after each of `index` (before it, when negative) in
    the same env's column. Kept within `episode_bounds`, they stay in the episode; which
    step to take (a hindsight goal's final, future, ...) is the algorithm's choice."""
    rows = state.step.shape[0]
    return Index(row=((index.row + offset) % rows).astype(jnp.int32), env=index.env)
