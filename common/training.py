"""The Python loop every training script shares.

A script's `make_train(args)` returns a `Trainer` of pure functions; `run` vmaps
them over seeds, compiles the chunk once, then alternates [train chunk →
evaluate → log → progress], and saves a checkpoint at the end if asked.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from common import checkpoint
from common.logger import RunLogger, run_name


class Trainer(NamedTuple):
    init: Callable  # key -> state, for one seed
    train_chunk: Callable  # state -> (state, metrics), one jitted lax.scan
    evaluate: Callable  # (state, key) -> metrics
    steps_per_chunk: int  # env steps per seed in one chunk
    buffer_bytes: Callable  # state -> bytes of replay held by one seed


def seed_keys(seed: int, num_seeds: int) -> jax.Array:
    """Typed keys of seeds seed, seed+1, ...: (num_seeds,)."""
    return jax.vmap(jax.random.key)(jnp.arange(seed, seed + num_seeds))


def run(algo: str, args: Any, trainer: Trainer) -> dict[str, np.ndarray]:
    """Train `args.num_seeds` seeds side by side; returns the last metrics (per seed)."""
    run_dir = os.path.join(args.run_dir, run_name(args.env_id, algo, args.seed))
    for suffix in range(1, 1000):  # two runs started in the same second never share a directory
        if not os.path.exists(run_dir):
            break
        run_dir = os.path.join(args.run_dir, f"{run_name(args.env_id, algo, args.seed)}-{suffix}")
    keys = seed_keys(args.seed, args.num_seeds)
    state = jax.jit(jax.vmap(trainer.init))(keys)
    eval_keys = jax.vmap(lambda k: jax.random.fold_in(k, 1))(keys)
    buffer_mib = trainer.buffer_bytes(state) / 2**20
    print(f"replay buffer: {buffer_mib:.1f} MiB for {args.num_seeds} seed(s)")
    start = time.time()
    train_chunk = jax.jit(jax.vmap(trainer.train_chunk), donate_argnums=0).lower(state).compile()
    evaluate = jax.jit(jax.vmap(trainer.evaluate)).lower(state, eval_keys).compile()
    print(f"compiled in {time.time() - start:.1f} s")
    total_steps = trainer.steps_per_chunk * args.num_chunks
    with RunLogger(
        run_dir, args, total_steps=total_steps, num_seeds=args.num_seeds, quiet=args.quiet
    ) as logger:
        start = time.time()
        for chunk in range(1, args.num_chunks + 1):
            state, metrics = train_chunk(state)
            eval_keys = jax.vmap(lambda k: jax.random.fold_in(k, 1))(eval_keys)
            metrics.update(evaluate(state, eval_keys))
            metrics = jax.device_get(metrics)
            env_steps = chunk * trainer.steps_per_chunk
            metrics["charts/SPS"] = env_steps * args.num_seeds / (time.time() - start)
            logger.log(env_steps, metrics)
            logger.progress(env_steps, success=metrics["eval/success_rate"])
        if args.save_model:
            checkpoint.save(
                os.path.join(run_dir, "checkpoint"),
                state,
                {"algo": algo, "args": dataclasses.asdict(args), "env_steps": env_steps},
            )
        final = np.asarray(metrics["eval/success_rate"])
        logger.summary(
            f"{algo} {args.env_id}: eval success {final.mean():.3f} (per seed "
            f"{[round(float(x), 3) for x in final]}) after {env_steps} env steps per seed, "
            f"{time.time() - start:.0f} s; logs in {run_dir}"
            + (f", checkpoint in {run_dir}/checkpoint" if args.save_model else "")
        )
    return metrics
