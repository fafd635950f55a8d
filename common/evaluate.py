"""Evaluation rollouts: one episode in each of many parallel envs, inside jit. (The
evaluation of a saved run is `python -m harness.evaluate_saved runs/<run_name>`.)"""

from __future__ import annotations

import sys
from collections.abc import Callable

import jax
import jax.numpy as jnp

from common import parallel
from envs.core import Env, has_achieved


def evaluate(env: Env, policy: Callable, key: jax.Array, num_episodes: int) -> dict:
    """Roll `policy(obs (N, obs_dim), task (N, task_dim), key) -> actions` for one
    episode in `num_episodes` fresh envs.

    Returns means over episodes of: success (the task solved at the episode's
    last step), time at goal (the fraction of the episode's steps that reached a
    state solving the task), return, length, and for goal families the final
    distance between the achieved and the commanded goal.

    Traced under a mesh with a `data` axis (a run over several devices), the episodes
    are split over its devices like the training envs; `num_episodes` must divide.
    """
    reset_key, run_key = jax.random.split(key)
    state = parallel.split_batch(jax.vmap(env.reset)(jax.random.split(reset_key, num_episodes)))
    zeros = jnp.zeros((num_episodes,))

    def step(carry, step_key):
        state, alive, ret, length, success, at_goal, distance = carry
        action = policy(state.obs, state.task, step_key)
        nxt = jax.vmap(env.step)(state, action)
        done = alive & (nxt.terminated | nxt.truncated)
        ret = ret + jnp.where(alive, nxt.reward, 0.0)
        length = length + alive
        at_goal = at_goal + (alive & nxt.success)
        success = jnp.where(done, nxt.success, success)
        if has_achieved(env.family):
            gap = jnp.linalg.norm(jax.vmap(env.family.achieved)(nxt.features) - state.task, axis=-1)
            distance = jnp.where(done, gap, distance)
        return (nxt, alive & ~done, ret, length, success, at_goal, distance), None

    carry = (state, jnp.ones((num_episodes,), bool), zeros, zeros, zeros, zeros, zeros)
    keys = jax.random.split(run_key, env.episode_length)
    (_, _, ret, length, success, at_goal, distance), _ = jax.lax.scan(step, carry, keys)
    metrics = {
        "success_rate": success.mean(),
        "time_at_goal": (at_goal / jnp.maximum(length, 1)).mean(),
        "episode_return": ret.mean(),
        "episode_length": length.mean(),
    }
    if has_achieved(env.family):
        metrics["final_distance"] = distance.mean()
    return metrics


if __name__ == "__main__":  # the command moved to the harness
    print(
        "error: python -m harness.evaluate_saved is now python -m harness.evaluate_saved "
        "(same arguments)",
        file=sys.stderr,
    )
    raise SystemExit(2)
