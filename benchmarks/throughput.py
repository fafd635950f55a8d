"""Throughput on this machine: env-only steps/s and training steps/s.

For each env (bitflip n_bits=10, pointnav dim=2, four_rooms) and each number of
parallel envs N:

- env-only: `jax.jit` of a `lax.scan` over S steps of `jax.vmap(env.step)` with
  random actions drawn inside the scan (discrete: uniform over the actions;
  continuous: uniform in [-1, 1]^action_size). A short probe call picks S so
  that one call takes about `--env-seconds`; the program of that S is compiled
  ahead of time (`.lower().compile()`, the reported compile time), called once
  to warm up, then timed `--repeats` times: the median of S * N / seconds.
- training: the matching algorithm (her_dqn for bitflip, her for pointnav and
  four_rooms) with one seed, `learning_starts=0` and the algorithm's default
  batch size and gradient steps per iteration. `make_train(args)`, then
  `jax.jit(jax.vmap(init))` and the AOT-compiled
  `jax.jit(jax.vmap(train_chunk), donate_argnums=0)`, as `harness/training.Run.compile`
  does. One chunk is `--chunk-iters` iterations (every env steps once and the
  learner takes `gradient_steps` updates per iteration); a timed sample is
  enough back-to-back chunk calls to last `--train-seconds`, and the median of
  `--repeats` samples is reported as env steps/s and gradient updates/s.
  Evaluation is not timed.

Prints one line per measurement; with `--rows-out FILE` it also appends one JSON row
per (env, num_envs) to FILE (`python experiments/sweep.py throughput` records them and
`python experiments/report.py throughput` writes docs/performance.md's table).

    python benchmarks/throughput.py                      # full grid
    python benchmarks/throughput.py --quick              # smoke run
    python benchmarks/throughput.py --envs bitflip --num-envs 64
"""

from __future__ import annotations

import gc
import importlib.util
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass, replace
from typing import Literal

import jax
import jax.numpy as jnp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import envs  # noqa: E402
from harness import cli  # noqa: E402
from harness.records import append_row  # noqa: E402
from harness.training import seed_keys  # noqa: E402

EnvName = Literal["bitflip", "pointnav", "four_rooms"]

# env id -> (env parameters, training script in algos/)
SETUPS: dict[str, tuple[tuple[str, ...], str]] = {
    "bitflip": (("n_bits=10",), "her_dqn"),
    "pointnav": (("dim=2",), "her"),
    "four_rooms": ((), "her"),
}
# Iterations per training chunk when --chunk-iters is 0: about half a second
# per chunk on a 2-core machine (her's 3x256 actor-critic updates are ~20x
# dearer than her_dqn's 1x256 Q-network updates).
DEFAULT_CHUNK_ITERS = {"her_dqn": 200, "her": 25}


@dataclass(frozen=True)
class Args:
    num_envs: tuple[int, ...] = (1, 64, 1024)
    """numbers of parallel envs (per seed) to measure"""
    envs: tuple[EnvName, ...] = ("bitflip", "pointnav", "four_rooms")
    """environments; each is trained with its algorithm (bitflip: her_dqn, others: her)"""
    repeats: int = 5
    """timed samples per measurement; the median is reported"""
    env_seconds: float = 0.5
    """target duration of one env-only call (S is chosen to match it)"""
    train_seconds: float = 0.5
    """minimum duration of one timed training sample (back-to-back chunk calls)"""
    chunk_iters: int = 0
    """iterations per training chunk; 0: her_dqn 200, her 25"""
    skip_env: bool = False
    """do not measure env-only throughput"""
    skip_train: bool = False
    """do not measure training throughput"""
    seed: int = 0
    """seed of the env keys, actions and training runs"""
    quick: bool = False
    """smoke run: N = 4, 2 repeats, 0.05 s samples, 4-iteration chunks"""
    rows_out: str | None = None
    """append one JSON row per (env, num_envs) to this file"""

    def __post_init__(self):
        if not self.num_envs or min(self.num_envs) < 1:
            raise cli.UsageError(f"--num-envs must be positive integers, got {self.num_envs}")
        if not self.envs:
            raise cli.UsageError("--envs must name at least one env")
        if self.repeats < 1:
            raise cli.UsageError(f"--repeats must be at least 1, got {self.repeats}")
        if self.env_seconds <= 0 or self.train_seconds <= 0:
            raise cli.UsageError("--env-seconds and --train-seconds must be positive")
        if self.chunk_iters < 0:
            raise cli.UsageError(f"--chunk-iters must be >= 0, got {self.chunk_iters}")
        if self.skip_env and self.skip_train:
            raise cli.UsageError("--skip-env and --skip-train together leave nothing to measure")


def effective(args: Args) -> Args:
    """The settings --quick stands for."""
    if not args.quick:
        return args
    return replace(
        args, num_envs=(4,), repeats=2, env_seconds=0.05, train_seconds=0.05, chunk_iters=4
    )


def load_algo(name: str):
    """Import algos/<name>.py as a module (the training scripts are not a package)."""
    module_name = f"_throughput_algo_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(
        module_name, os.path.join(ROOT, "algos", f"{name}.py")
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


def timed(fn, *args):
    """(result, seconds) of fn(*args), waiting for the result."""
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return out, time.perf_counter() - start


# ------------------------------------------------------------------ env only
def make_rollout(env: envs.Env, num_envs: int, steps: int):
    """(state (N,), key) -> state after `steps` steps of every env under random actions."""

    def random_action(key):
        if env.discrete:
            return jax.random.randint(key, (num_envs,), 0, env.num_actions)
        return jax.random.uniform(key, (num_envs, env.action_size), minval=-1.0, maxval=1.0)

    def body(carry, _):
        state, key = carry
        key, action_key = jax.random.split(key)
        return (jax.vmap(env.step)(state, random_action(action_key)), key), None

    def rollout(state, key):
        # Every field of the state (reward, success, ...) is in the carry and returned,
        # so nothing the env computes can be dropped as dead code.
        (state, _), _ = jax.lax.scan(body, (state, key), None, length=steps)
        return state

    return rollout


def measure_env(env_id: str, num_envs: int, args: Args) -> dict:
    env_kwargs, _ = SETUPS[env_id]
    env = envs.make(env_id, **cli.parse_env_kwargs(env_kwargs))
    keys = jax.random.split(jax.random.key(args.seed), args.repeats + 3)
    # Eager vmap: small per-op programs instead of one more multi-second compile.
    state = jax.block_until_ready(jax.vmap(env.reset)(jax.random.split(keys[0], num_envs)))

    def compile_for(steps):
        start = time.perf_counter()
        fn = jax.jit(make_rollout(env, num_envs, steps)).lower(state, keys[1]).compile()
        return fn, time.perf_counter() - start

    # Probe: ~16k env steps tell the rate, then S is set for ~env_seconds per call.
    probe_steps = max(1, 2**14 // num_envs)
    fn, compile_s = compile_for(probe_steps)
    jax.block_until_ready(fn(state, keys[1]))  # first call
    _, probe_s = timed(fn, state, keys[2])
    steps = max(1, round(args.env_seconds * probe_steps / probe_s))
    if steps != probe_steps:
        fn, compile_s = compile_for(steps)
        jax.block_until_ready(fn(state, keys[1]))  # first call
    cpu, wall = time.process_time(), time.perf_counter()
    seconds = [timed(fn, state, key)[1] for key in keys[3:]]
    cores = (time.process_time() - cpu) / (time.perf_counter() - wall)
    median = statistics.median(seconds)
    return {
        "env_steps_per_call": steps,
        "env_call_s": median,
        "env_sps": steps * num_envs / median,
        "env_compile_s": compile_s,
        "env_cores": cores,
    }


# ------------------------------------------------------------------ training
def measure_train(env_id: str, num_envs: int, args: Args) -> dict:
    env_kwargs, algo = SETUPS[env_id]
    module = load_algo(algo)
    episode_length = envs.make(env_id, **cli.parse_env_kwargs(env_kwargs)).episode_length
    iters = args.chunk_iters or DEFAULT_CHUNK_ITERS[algo]
    run_args = module.Args(
        env_id=env_id,
        env_kwargs=env_kwargs,
        seed=args.seed,
        num_envs=num_envs,
        num_seeds=1,
        total_timesteps=iters * num_envs,  # one chunk of `iters` iterations
        num_chunks=1,
        buffer_size=max(episode_length * num_envs * 4, 100_000),
        learning_starts=0,
        quiet=True,
    )
    trainer = module.make_train(run_args)
    assert trainer.steps_per_chunk == iters * num_envs, (trainer.steps_per_chunk, iters)

    keys = seed_keys(run_args.seed, run_args.num_seeds)
    start = time.perf_counter()
    state = jax.block_until_ready(jax.jit(jax.vmap(trainer.init))(keys))
    init_s = time.perf_counter() - start
    buffer_mib = trainer.buffer_bytes(state) / 2**20
    start = time.perf_counter()
    chunk = jax.jit(jax.vmap(trainer.train_chunk), donate_argnums=0).lower(state).compile()
    compile_s = time.perf_counter() - start

    start = time.perf_counter()
    state, metrics = jax.block_until_ready(chunk(state))  # first call
    first_s = time.perf_counter() - start
    calls = max(1, math.ceil(args.train_seconds / first_s))
    seconds = []
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(args.repeats):
        start = time.perf_counter()
        for _ in range(calls):
            state, metrics = chunk(state)
        jax.block_until_ready(state)
        seconds.append(time.perf_counter() - start)
    cores = (time.process_time() - cpu) / (time.perf_counter() - wall)
    losses = [float(jnp.mean(v)) for k, v in metrics.items() if k.startswith("losses/")]
    if not all(math.isfinite(x) for x in losses):
        print(f"warning: non-finite losses in {algo} on {env_id} (N={num_envs}): {metrics}")
    median = statistics.median(seconds)
    del state, chunk
    return {
        "algo": algo,
        "chunk_iters": iters,
        "gradient_steps": run_args.gradient_steps,
        "batch_size": run_args.batch_size,
        "buffer_size": run_args.buffer_size,
        "buffer_mib": buffer_mib,
        "chunk_calls_per_sample": calls,
        "chunk_s": median / calls,
        "train_sps": trainer.steps_per_chunk * calls / median,
        "updates_per_s": iters * run_args.gradient_steps * calls / median,
        "train_compile_s": compile_s,
        "init_compile_s": init_s,
        "train_cores": cores,
    }


# ------------------------------------------------------------------ main
def main(args: Args) -> list[dict]:
    args = effective(args)
    start = time.perf_counter()
    rows = []
    for env_id in args.envs:
        for num_envs in args.num_envs:
            row = {"env": env_id, "algo": SETUPS[env_id][1], "num_envs": num_envs}
            if not args.skip_env:
                row.update(measure_env(env_id, num_envs, args))
                print(
                    f"{env_id} N={num_envs}: env-only {row['env_sps']:,.0f} steps/s "
                    f"(S={row['env_steps_per_call']}, {row['env_call_s']:.2f} s/call, "
                    f"compile {row['env_compile_s']:.1f} s)",
                    flush=True,
                )
            if not args.skip_train:
                row.update(measure_train(env_id, num_envs, args))
                print(
                    f"{env_id} N={num_envs}: {row['algo']} {row['train_sps']:,.0f} env steps/s, "
                    f"{row['updates_per_s']:,.0f} updates/s ({row['chunk_s']:.2f} s/chunk, "
                    f"compile {row['train_compile_s']:.1f} s, init {row['init_compile_s']:.1f} s, "
                    f"buffer {row['buffer_mib']:.1f} MiB)",
                    flush=True,
                )
            append_row(args.rows_out, row)
            rows.append(row)
            gc.collect()
    load = [round(x, 2) for x in os.getloadavg()]
    print(f"total {time.perf_counter() - start:.0f} s; load average {load}")
    return rows


if __name__ == "__main__":
    main(cli.parse(Args))
