"""Evaluation rollouts: one episode in each of many parallel envs, inside jit; and,
run as `python -m common.evaluate runs/<run_name>`, the evaluation of a saved policy."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import tyro

from common import parallel
from common.cli import UsageError, check_numbers, check_output_dir, parse
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


# ---------------------------------------------------------------- a saved policy
@dataclass(frozen=True)
class EvalArgs:
    """Roll a saved policy out on fresh tasks: python -m common.evaluate runs/<run_name>"""

    run: tyro.conf.Positional[str]
    """the run directory (runs/<run_name>) whose checkpoint to load (saved with --save-model)"""
    episodes: int = 100
    """episodes per seed, each on a fresh task"""
    seed: int = 0
    """seed of the evaluation episodes (the tasks, starts and noise)"""
    capture_video: bool = False
    """also draw one episode of the first seed to <run>/videos/evaluate_<seed>.gif"""

    def __post_init__(self):
        check_numbers(self, episodes="> 0", seed=f"[0, {2**32 - 1}]")
        if not os.path.exists(self.run):
            raise UsageError(f"no run directory {self.run}")
        if not os.path.isdir(self.run):
            raise UsageError(f"{self.run} is a file, not a run directory")
        if self.capture_video:
            check_output_dir("--capture-video", os.path.join(self.run, "videos"))


def evaluate_saved(args: EvalArgs) -> dict[str, np.ndarray]:
    """Load `args.run`'s checkpoint, roll out every seed's policy, print and return metrics."""
    from common import training, video

    _, run_args, trainer, state, header = training.load_trained(
        args.run, eval_episodes=args.episodes
    )
    keys = jax.vmap(lambda k: jax.random.fold_in(k, args.seed))(
        training.seed_keys(run_args.seed, run_args.num_seeds)
    )
    metrics = jax.device_get(jax.jit(jax.vmap(trainer.evaluate))(state, keys))
    print(
        f"{header['algo']} {run_args.env_id} after {header['env_steps']} env steps per seed, "
        f"{args.episodes} fresh episodes per seed:"
    )
    for name, value in metrics.items():
        per_seed = ", ".join(f"{float(v):.3f}" for v in np.atleast_1d(value))
        print(f"  {name}: {float(np.mean(value)):.3f} (per seed: {per_seed})")
    if args.capture_video:
        path = os.path.join(args.run, "videos", f"evaluate_{args.seed}.gif")
        first = jax.tree.map(lambda x: x[0], state)
        try:
            video.save_episode(trainer.env, trainer.policy(first), keys[0], path)
            print(f"video: {path}")
        except video.VideoError as err:
            print(f"no video: {err}")
    return metrics


def main(argv: list[str] | None = None) -> dict[str, np.ndarray]:
    args = parse(EvalArgs, argv)
    try:
        return evaluate_saved(args)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
