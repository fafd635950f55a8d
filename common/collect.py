"""Roll out a policy over tasks from the prior in many parallel envs and keep whole
episodes as a trajectory dataset (`common.dataset`).

The policy is any `policy(obs (N, obs_dim), task (N, task_dim), key) -> actions (N, act)`
(the signature of `common.evaluate`): a scripted expert from `envs.experts` or a
trained policy. One episode per env: a `lax.scan` over the episode's steps with every
env stepped by one `vmap`, all inside one jitted function; the host only loops over
batches of `num_envs` episodes.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from common.dataset import Dataset
from envs.core import Env


def make_rollout(env: Env, policy: Callable, num_envs: int) -> Callable:
    """key -> dict of one episode in each of `num_envs` fresh envs:
    observations (N, T, obs), actions (N, T, act), features (N, T, feat), lengths (N,),
    task_labels (N, task_dim), and, not stored in datasets, success (N,) at each episode's
    last step and returns (N,) the env's rewards summed over the episode.
    Steps after an episode ends are zeros (the env has auto-reset; they are padding)."""
    horizon = env.episode_length

    def rollout(key):
        reset_key, run_key = jax.random.split(key)
        first = jax.vmap(env.reset)(jax.random.split(reset_key, num_envs))

        def step(carry, step_key):
            state, alive, success, ret = carry
            action = policy(state.obs, state.task, step_key)
            if not env.discrete:
                action = jnp.clip(action, -1.0, 1.0)
            nxt = jax.vmap(env.step)(state, action)
            done = alive & (nxt.terminated | nxt.truncated)
            success = jnp.where(done, nxt.success, success)
            ret = ret + jnp.where(alive, nxt.reward, 0.0)
            keep = alive[:, None]
            record = {
                "observations": jnp.where(keep, state.obs, 0.0),
                "actions": jnp.where(keep, jnp.reshape(action, (num_envs, -1)), 0.0),
                "features": jnp.where(keep, nxt.features, 0.0),
                "alive": alive,
            }
            return (nxt, alive & ~done, success, ret), record

        alive = jnp.ones((num_envs,), bool)
        carry = (first, alive, jnp.zeros((num_envs,), bool), jnp.zeros((num_envs,)))
        (_, _, success, ret), record = jax.lax.scan(step, carry, jax.random.split(run_key, horizon))
        out = {k: jnp.swapaxes(v, 0, 1).astype(jnp.float32) for k, v in record.items()}
        return {
            "observations": out["observations"],
            "actions": out["actions"],
            "features": out["features"],
            "lengths": record["alive"].sum(axis=0).astype(jnp.int32),
            "task_labels": first.task.astype(jnp.float32),
            "success": success,
            "returns": ret,
        }

    return rollout


def collect(
    env: Env,
    policy: Callable,
    key: jax.Array,
    num_trajectories: int,
    num_envs: int,
    env_id: str,
    env_kwargs: dict,
    metadata: dict | None = None,
) -> tuple[Dataset, dict]:
    """`num_trajectories` episodes of `policy`, `num_envs` at a time. Returns the dataset
    (true task labels included, for evaluation only) and statistics of the rollouts."""
    num_envs = min(num_envs, num_trajectories)
    rollout = jax.jit(make_rollout(env, policy, num_envs))
    batches = [
        jax.device_get(rollout(batch_key))
        for batch_key in jax.random.split(key, math.ceil(num_trajectories / num_envs))
    ]
    arrays = {
        name: np.concatenate([b[name] for b in batches])[:num_trajectories] for name in batches[0]
    }
    success, returns = arrays.pop("success"), arrays.pop("returns")
    stats = {
        "success_rate": float(success.mean()),
        "mean_return": float(returns.mean()),
        "mean_length": float(arrays["lengths"].mean()),
    }
    dataset = Dataset(
        env_id=env_id, env_kwargs=dict(env_kwargs), metadata={**(metadata or {}), **stats}, **arrays
    )
    return dataset, stats
