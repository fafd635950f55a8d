"""The evaluation of a saved run: `python -m harness.evaluate_saved runs/<run_name>`
loads its checkpoint and rolls every seed's policy out on fresh tasks."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import jax
import numpy as np
import tyro

from harness import training, video
from harness.cli import UsageError, check_numbers, check_output_dir, parse


@dataclass(frozen=True)
class EvalArgs:
    """Roll a saved policy out on fresh tasks: python -m harness.evaluate_saved runs/<run_name>"""

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
    _, run_args, trainer, state, header = training.load_trained(
        args.run, eval_episodes=args.episodes
    )
    keys = jax.vmap(lambda k: jax.random.fold_in(k, args.seed))(
        training.seed_keys(run_args.seed, run_args.num_seeds)
    )
    if trainer.reported is not None:  # the policy the run reports (hipi_bc: best validation)
        state = trainer.reported(state)
    metrics = jax.device_get(jax.jit(jax.vmap(trainer.evaluate))(state, keys))
    if hasattr(run_args, "env_id"):  # an online run: its chunks count env steps
        trained = f"{run_args.env_id} after {header['env_steps']} env steps per seed"
    else:  # hipi_bc: the env comes from its dataset (the run's name starts with it)
        env_id = os.path.basename(os.path.normpath(args.run)).split("__")[0]
        trained = f"{env_id} after {header['chunk']} epochs"
    print(f"{header['algo']} {trained}, {args.episodes} fresh episodes per seed:")
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
