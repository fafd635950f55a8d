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
import numpy as np


def pointnav_expert(env, noise: float = 0.1) -> Callable:
    """Point navigation (continuous goals or a goal set): the largest step straight
    towards the goal, plus Gaussian noise of std `noise` on every action dimension,
    clipped to the action box [-1, 1]."""

    def policy(obs, task, key):
        toward = jnp.clip((task - obs) / env.max_step, -1.0, 1.0)
        return jnp.clip(toward + noise * jax.random.normal(key, toward.shape), -1.0, 1.0)

    return policy


def four_rooms_expert(env, noise: float = 0.1) -> Callable:
    """FourRooms: follow the shortest path of cells to the goal's cell
    (`four_rooms.distance_fields`), aiming at the centre of the neighbouring cell
    closest to the goal, and at the goal itself once within one cell of it; plus
    Gaussian noise of std `noise` (on top of the env's own action noise), clipped to
    [-1, 1]. With the env's defaults (action noise 1.0, margin 0.3) this policy
    succeeds in about 60% of episodes: the noise, not the route, limits the task."""
    from envs.four_rooms import distance_fields

    fields = jnp.asarray(distance_fields(np.asarray(env.walls)))  # (H, W, H, W)
    far = env.height * env.width
    fields = jnp.where(fields < 0, far, fields)
    last = jnp.asarray([env.height - 1, env.width - 1])
    offsets = jnp.asarray([(i, j) for i in (-1, 0, 1) for j in (-1, 0, 1)])

    def act(obs, task):
        cell = jnp.clip(jnp.floor(obs).astype(jnp.int32), 0, last)
        goal = jnp.clip(jnp.floor(task).astype(jnp.int32), 0, last)
        around = jnp.clip(cell + offsets, 0, last)  # (9, 2), the cell itself included
        to_goal = fields[goal[0], goal[1], around[:, 0], around[:, 1]]
        waypoint = around[jnp.argmin(to_goal)] + 0.5
        near = jnp.all(cell == goal) | (jnp.linalg.norm(task - obs) < 1.0)
        return jnp.clip(jnp.where(near, task, waypoint) - obs, -1.0, 1.0)

    def policy(obs, task, key):
        toward = jax.vmap(act)(obs, task)
        return jnp.clip(toward + noise * jax.random.normal(key, toward.shape), -1.0, 1.0)

    return policy


EXPERTS = {"pointnav": pointnav_expert, "four_rooms": four_rooms_expert}


def make_expert(env_id: str, env, noise: float = 0.1) -> Callable:
    """The scripted expert of `env_id`; ValueError naming the ids that have one."""
    if env_id not in EXPERTS:
        raise ValueError(
            f"no scripted expert for {env_id!r}; experts exist for: {', '.join(EXPERTS)}"
        )
    if noise < 0:
        raise ValueError(f"expert noise must not be negative, got {noise}")
    return EXPERTS[env_id](env, noise)
