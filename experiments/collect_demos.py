"""Collect a demonstration dataset: roll out a scripted expert, or the policy of a
trained run (`--checkpoint runs/<run_name>`, saved with `--save-model`), over tasks
from the prior in many parallel envs and write the episodes to a dataset file
(`common/dataset.py`). The tasks the episodes were collected for stay in the file
as `task_labels`, for evaluation only: `algos/hipi_bc.py` never trains on them.

    python experiments/collect_demos.py --env-id pointnav --env-kwargs num_goals=4 \
        --num-trajectories 1000 --out data/pointnav_goals4.npz
    python experiments/collect_demos.py --checkpoint runs/<run_name> --out data/run.npz
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common import dataset as ds  # noqa: E402
from common.collect import collect  # noqa: E402
from envs.experts import EXPERTS, make_expert  # noqa: E402
from harness import cli, training  # noqa: E402


@dataclass(frozen=True)
class Args:
    env_id: str = "pointnav"
    """environment id; scripted experts exist for the ids in envs.experts.EXPERTS"""
    checkpoint: str | None = None
    """a trained run (runs/<run_name>, saved with --save-model) whose first seed's policy
    acts instead of a scripted expert; its env and env parameters are used"""
    env_kwargs: tuple[str, ...] = ()
    """env parameters as name=value pairs, e.g. `--env-kwargs num_goals=4`"""
    noise: float = 0.1
    """standard deviation of the Gaussian noise added to the expert's or policy's actions"""
    num_trajectories: int = 1000
    """episodes to write"""
    num_envs: int = 1000
    """parallel envs per jitted rollout"""
    seed: int = 0
    """seed of the rollouts"""
    out: str = "data/demos.npz"
    """dataset file to write (atomically)"""

    def __post_init__(self):
        for name in ("num_trajectories", "num_envs"):
            if getattr(self, name) <= 0:
                raise cli.UsageError(f"--{name.replace('_', '-')} must be positive")
        if self.noise < 0:
            raise cli.UsageError(f"--noise must not be negative, got {self.noise}")
        if self.checkpoint is not None:
            if not os.path.isdir(os.path.join(self.checkpoint, "checkpoint")):
                raise cli.UsageError(
                    f"--checkpoint {self.checkpoint}: no checkpoint there (train with --save-model)"
                )
            return
        if self.env_id not in EXPERTS:
            raise cli.UsageError(
                f"no scripted expert for {self.env_id!r}; experts exist for: {', '.join(EXPERTS)}"
            )
        env = cli.make_env(self.env_id, self.env_kwargs)
        if env.discrete:
            raise cli.UsageError(
                f"{self.env_id} has discrete actions; datasets hold continuous ones"
            )
        try:
            make_expert(self.env_id, env, self.noise)
        except ValueError as err:
            raise cli.UsageError(str(err)) from None


def trained_policy(run_dir: str, noise: float):
    """(env, env_id, env kwargs, policy) of the first seed of a saved run, with Gaussian
    action noise of std `noise`, clipped to [-1, 1]."""
    try:
        _, run_args, trainer, state, _ = training.load_trained(run_dir)
    except cli.UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    if trainer.env.discrete:
        print(
            f"error: {run_dir} acts in {run_args.env_id}, whose actions are discrete",
            file=sys.stderr,
        )
        raise SystemExit(2)
    act = trainer.policy(jax.tree.map(lambda x: x[0], state))

    def policy(obs, task, key):
        action = act(obs, task, key)
        return jnp.clip(action + noise * jax.random.normal(key, action.shape), -1.0, 1.0)

    return trainer.env, run_args.env_id, run_args.env_kwargs, policy


def main(args: Args) -> ds.Dataset:
    if args.checkpoint is not None:
        env, env_id, env_kwargs, policy = trained_policy(args.checkpoint, args.noise)
        source = f"policy of {args.checkpoint}"
    else:
        env = cli.make_env(args.env_id, args.env_kwargs)
        env_id, env_kwargs = args.env_id, args.env_kwargs
        policy = make_expert(args.env_id, env, args.noise)
        source = f"{args.env_id} scripted expert"
    start = time.time()
    dataset, stats = collect(
        env,
        policy,
        jax.random.key(args.seed),
        args.num_trajectories,
        args.num_envs,
        env_id=env_id,
        env_kwargs=cli.parse_env_kwargs(env_kwargs),
        metadata={"policy": source, "noise": args.noise},
    )
    ds.save(args.out, dataset)
    print(
        f"wrote {dataset.num_trajectories} trajectories of up to {dataset.max_length} steps "
        f"to {args.out} in {time.time() - start:.1f} s; {source} success "
        f"{stats['success_rate']:.3f}, mean length {stats['mean_length']:.1f}"
    )
    return dataset


if __name__ == "__main__":
    main(cli.parse(Args))
