"""Scripted experts: policies that solve an env's commanded task without learning, so
demonstration datasets (and the tests that need them) cost no RL training.

An expert is a `policy(obs (N, obs_dim), task (N, task_dim), key) -> actions (N, act)`,
the signature `common.collect` and `common.evaluate` roll out. `make_expert(env_id, env,
noise)` builds the one for an env id; `EXPERTS` lists the ids that have one.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp


def pointnav_expert(env, noise: float = 0.1) -> Callable:
    """Point navigation (continuous goals or a goal set): the largest step straight
    towards the goal, plus Gaussian noise of std `noise` on every action dimension,
    clipped to the action box [-1, 1]."""

    def policy(obs, task, key):
        toward = jnp.clip((task - obs) / env.max_step, -1.0, 1.0)
        return jnp.clip(toward + noise * jax.random.normal(key, toward.shape), -1.0, 1.0)

    return policy


EXPERTS = {"pointnav": pointnav_expert}


def make_expert(env_id: str, env, noise: float = 0.1) -> Callable:
    """The scripted expert of `env_id`; ValueError naming the ids that have one."""
    if env_id not in EXPERTS:
        raise ValueError(
            f"no scripted expert for {env_id!r}; experts exist for: {', '.join(EXPERTS)}"
        )
    if noise < 0:
        raise ValueError(f"expert noise must not be negative, got {noise}")
    return EXPERTS[env_id](env, noise)
