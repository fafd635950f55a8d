"""Running mean/std normalisation of observations and goals (pure pytree state)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class RunningStats:
    mean: jax.Array  # (D,)
    var: jax.Array  # (D,)
    count: jax.Array  # ()


def init(dim: int) -> RunningStats:
    return RunningStats(mean=jnp.zeros((dim,)), var=jnp.ones((dim,)), count=jnp.full((), 1e-4))


def update(stats: RunningStats, x: jax.Array) -> RunningStats:
    """Merge a batch x (B, D) into the running moments (Chan et al. parallel update)."""
    batch_mean = jnp.mean(x, axis=0)
    batch_var = jnp.var(x, axis=0)
    batch_count = x.shape[0]
    delta = batch_mean - stats.mean
    total = stats.count + batch_count
    mean = stats.mean + delta * batch_count / total
    m2 = (
        stats.var * stats.count
        + batch_var * batch_count
        + delta**2 * stats.count * batch_count / total
    )
    return RunningStats(mean=mean, var=m2 / total, count=total)


def normalize(stats: RunningStats, x: jax.Array, clip: float = 5.0) -> jax.Array:
    return jnp.clip((x - stats.mean) / jnp.sqrt(stats.var + 1e-8), -clip, clip)
