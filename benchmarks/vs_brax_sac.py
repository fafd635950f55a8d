"""Training throughput of `algos/hipi_rl.py --relabel none` (plain SAC) against brax's
own SAC trainer (`brax.training.agents.sac`) on the same env, measured alternately in
one process.

    python benchmarks/vs_brax_sac.py --env-id pointnav --num-envs 128 1024

Both sides get the same env (brax's trainer sees ours through `BraxAdapter`, with its
own episode and auto-reset wrappers around `Env.transition`), the same number of
parallel envs, batch size 256, 2 × 256 hidden units, one gradient step per step of
all envs, observation normalisation, and the same replay capacity. Steps/second count
env steps of training after compilation; compile time is reported separately:

- ours: `train_chunk` compiled ahead of time (timed), one chunk to pass learning
  starts, then the median of `--repeats` timed chunks;
- brax: `train(num_evals=3)` runs two training epochs after its prefill; the first
  includes compilation, the second is timed by brax itself (`training/sps`), and the
  compile time is the first epoch's time minus the second's;
- env alone: `--iterations` steps of `Env.step_batch` with random actions under one
  jit, timed for at least 2 s (benchmarks/envs.py), the ceiling of both trainers.

brax 0.14's trainer calls `jax.device_put_replicated`, which JAX 0.10 removed; this
script installs a stand-in for that one call (`_shim_device_put_replicated`) that
stacks the tree once per device and places it with a sharding over those devices.

Prints one line per number of envs; with `--rows-out FILE` it also appends one JSON row
per number of envs to FILE (`python experiments/sweep.py vs_brax_sac_<env>` records
them, `python experiments/report.py vs_brax_sac_<env>` writes docs/performance.md's
table).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import tyro

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import envs  # noqa: E402
from benchmarks import envs as env_benchmark  # noqa: E402
from harness import cli, training  # noqa: E402
from harness.algos_loader import load_algo  # noqa: E402
from harness.records import append_row  # noqa: E402


@dataclass(frozen=True)
class Args:
    env_id: str = "pointnav"
    """env to train on, e.g. pointnav or reacher"""
    env_kwargs: tuple[str, ...] = ()
    """env parameters as name=value pairs"""
    num_envs: tuple[int, ...] = (128, 1024)
    """parallel envs of each comparison"""
    iterations: int = 50
    """training iterations (one step of every env + one gradient step) per timed chunk"""
    repeats: int = 3
    """timed chunks of ours and brax runs per setting; the median is reported"""
    batch_size: int = 256
    """transitions per gradient step, both sides"""
    rows_out: str | None = None
    """append one JSON row per number of envs to this file"""


def _shim_device_put_replicated() -> None:
    """brax 0.14 replicates its training state with `jax.device_put_replicated`,
    removed from JAX 0.10: stack every leaf once per device and shard the stack."""
    if hasattr(jax, "device_put_replicated"):
        return

    def device_put_replicated(tree, devices):
        mesh = jax.sharding.Mesh(np.asarray(devices), ("devices",))
        sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("devices"))
        return jax.tree.map(
            lambda x: jax.device_put(jnp.stack([jnp.asarray(x)] * len(devices)), sharding), tree
        )

    jax.device_put_replicated = device_put_replicated


def brax_adapter(env: envs.Env):
    """Our env as a `brax.envs.Env`: observation = [obs, task], brax's wrappers add the
    time limit and the auto-reset, the step is `Env.transition` (no reset of its own)."""
    from brax.envs.base import Env as BraxEnv
    from brax.envs.base import State

    class BraxAdapter(BraxEnv):
        def reset(self, rng):
            state = env.reset(rng)
            obs = jnp.concatenate([state.obs, state.task])
            zero = jnp.zeros(())
            return State(pipeline_state=state, obs=obs, reward=zero, done=zero, metrics={})

        def step(self, state, action):
            nxt = env.transition(state.pipeline_state, action)
            obs = jnp.concatenate([nxt.obs, nxt.task])
            done = nxt.terminated.astype(jnp.float32)
            return state.replace(pipeline_state=nxt, obs=obs, reward=nxt.reward, done=done)

        @property
        def observation_size(self):
            return env.observation_size + env.family.task_dim

        @property
        def action_size(self):
            return env.action_size

        @property
        def backend(self):
            return "jax"

    return BraxAdapter()


def time_ours(args: Args, num_envs: int) -> tuple[float, float]:
    """(steps/second, compile seconds) of hipi_rl.py --relabel none."""
    module = load_algo("hipi_rl")
    steps_per_chunk = num_envs * args.iterations
    run_args = module.Args(
        env_id=args.env_id,
        env_kwargs=args.env_kwargs,
        relabel="none",
        num_envs=num_envs,
        total_timesteps=steps_per_chunk * 100,
        num_chunks=100,
        batch_size=args.batch_size,
        gradient_steps=1,
        buffer_size=max(steps_per_chunk * (args.repeats + 2), 10 * num_envs * 100),
        hidden_sizes=(256, 256),
        learning_starts=2 * num_envs,
        clip_target=False,  # brax's trainer does not clip its critic
        quiet=True,
    )
    trainer = module.make_train(run_args)
    state = jax.jit(training.over_seeds(trainer.init, 1))(training.seed_keys(0, 1))
    start = time.perf_counter()
    chunk = jax.jit(training.over_seeds(trainer.train_chunk, 1), donate_argnums=0)
    chunk = chunk.lower(state).compile()
    compile_s = time.perf_counter() - start
    state, metrics = chunk(state)  # past learning starts
    jax.block_until_ready(metrics)
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        state, metrics = chunk(state)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - start)
    return steps_per_chunk / statistics.median(times), compile_s


def time_env_only(args: Args, num_envs: int) -> float:
    """Steps/second of the env alone (benchmarks/envs.py's measurement: `Env.step_batch`,
    the step both trainers take, scanned under one jit with random actions), the
    ceiling of training."""
    env = cli.make_env(args.env_id, args.env_kwargs)
    settings = env_benchmark.Args(scan_steps=args.iterations, seconds=2.0)
    return env_benchmark.measure_throughput(env, num_envs, settings)["steps_per_second"]


def time_brax(args: Args, num_envs: int) -> tuple[float, float]:
    """(steps/second, compile seconds) of brax.training.agents.sac.train."""
    _shim_device_put_replicated()
    from brax.training.agents.sac import train as brax_sac

    env = cli.make_env(args.env_id, args.env_kwargs)
    steps_per_epoch = num_envs * args.iterations
    records = []
    brax_sac.train(
        environment=brax_adapter(env),
        num_timesteps=2 * num_envs + 2 * steps_per_epoch,
        episode_length=env.episode_length,
        num_envs=num_envs,
        num_eval_envs=16,
        learning_rate=3e-4,
        discounting=0.99,
        batch_size=args.batch_size,
        num_evals=3,
        normalize_observations=True,
        min_replay_size=2 * num_envs,
        max_replay_size=max(steps_per_epoch * 3, 10 * num_envs * 100),
        grad_updates_per_step=1,
        progress_fn=lambda step, metrics: records.append(dict(metrics)),
    )
    epochs = [r for r in records if "training/sps" in r]
    first, second = epochs[0], epochs[1]
    first_s = steps_per_epoch / first["training/sps"]
    second_s = steps_per_epoch / second["training/sps"]
    return float(second["training/sps"]), first_s - second_s


def main(args: Args) -> list[dict]:
    env = cli.make_env(args.env_id, args.env_kwargs)  # a bad env id fails before compiling
    if env.discrete:
        raise SystemExit(f"error: {args.env_id} has discrete actions; SAC needs continuous ones")
    rows = []
    for num_envs in args.num_envs:
        ours, theirs = [], []
        for _ in range(args.repeats):  # alternate, so load changes hit both sides alike
            ours.append(time_ours(args, num_envs))
            theirs.append(time_brax(args, num_envs))
        row = {
            "env": args.env_id,
            "num_envs": num_envs,
            "ours_sps": statistics.median(s for s, _ in ours),
            "brax_sps": statistics.median(s for s, _ in theirs),
            "ours_compile": statistics.median(c for _, c in ours),
            "brax_compile": statistics.median(c for _, c in theirs),
        }
        row["ratio"] = row["ours_sps"] / row["brax_sps"]
        row["env_sps"] = time_env_only(args, num_envs)
        row["ours_over_env"] = row["ours_sps"] / row["env_sps"]
        print(
            f"{args.env_id} {num_envs} envs: ours {row['ours_sps']:,.0f} steps/s, brax SAC "
            f"{row['brax_sps']:,.0f} steps/s, ratio {row['ratio']:.2f}; compile "
            f"{row['ours_compile']:.1f} s vs {row['brax_compile']:.1f} s; env alone "
            f"{row['env_sps']:,.0f} steps/s",
            flush=True,
        )
        append_row(args.rows_out, row)
        rows.append(row)
    return rows


if __name__ == "__main__":
    main(tyro.cli(Args))
