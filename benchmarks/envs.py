"""MJX env suite on this machine: env-only steps/s, compile time, and what a random
policy scores on every task family.

Throughput, for each env and each number of parallel envs N: `jax.jit` of a
`lax.scan` over `--scan-steps` steps of `env.step_batch` (the vmapped step the
training scripts call, which computes fresh resets only on steps where an episode
ended), random actions uniform in [-1, 1] drawn inside the scan. The program is
compiled ahead of time (`.lower().compile()`: the reported compile time, tracing
included), called once to warm up, then called back to back for at least
`--seconds`; the rate is N · steps / wall time.

Random policy, for each env and family (an env without an entry in `FAMILIES`: its
default family): `--sanity-envs` envs run `--sanity-episodes` episode lengths of
uniform random actions; over the episodes that finished, the mean undiscounted return
and the fraction that succeeded at least once (None for families without a notion of
success).

Prints one line per measurement; with `--rows-out FILE` it also appends one JSON row
per measurement to FILE, `kind` "throughput" or "random_policy" (`python
experiments/sweep.py mjx_envs` records them, `python experiments/report.py mjx_envs
mjx_envs_random_policy` writes docs/envs.md's tables).

    python benchmarks/envs.py                              # every MJX env
    python benchmarks/envs.py --envs reacher --num-envs 1 16
    python benchmarks/envs.py --no-throughput              # random-policy table only
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time

import jax
import jax.numpy as jnp
import tyro

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import envs  # noqa: E402
from envs.core import LinearReward  # noqa: E402
from harness.records import append_row  # noqa: E402

MJX_ENVS = ("reacher", "arm_reach", "half_cheetah", "walker", "quadruped", "finger")

# Random-policy cases: (label, env id, env parameters).
FAMILIES: dict[str, list[tuple[str, dict]]] = {
    "reacher": [
        ("goal_reaching, margin 0.01", dict(family="goal_reaching")),
        ("goal_reaching, margin 0.003", dict(family="goal_reaching", margin=0.003)),
        ("goal_set (32 goals), margin 0.01", dict(family="goal_set")),
        ("goal_margin, m ~ U[0, 0.1]", dict(family="goal_margin")),
    ],
    "arm_reach": [
        ("goal_reaching, margin 0.05", dict(family="goal_reaching")),
        ("goal_margin, m ~ U[0, 0.1]", dict(family="goal_margin")),
    ],
    "half_cheetah": [("target velocity ψ ~ U[0, 3]", dict())],
    "walker": [("linear ψ·φ", dict())],
    "quadruped": [
        ("goal on the unit circle, radius 0.3", dict(family="goal_reaching")),
        ("direction ψ·v_xy", dict(family="direction")),
    ],
    "finger": [("knob-tip goal, margin 0.01", dict())],
}


@dataclasses.dataclass(frozen=True)
class Args:
    envs: tuple[str, ...] = MJX_ENVS
    """env ids to measure (those not registered in `envs` are skipped with a note)"""
    num_envs: tuple[int, ...] = (1, 16, 256, 2048)
    """numbers of parallel envs for the throughput table"""
    scan_steps: int = 10
    """env steps per jitted call"""
    seconds: float = 3.0
    """minimum timed wall time per measurement"""
    throughput: bool = True
    """measure steps/s and compile time"""
    sanity: bool = True
    """measure the random-policy table"""
    sanity_envs: int = 128
    """parallel envs for the random-policy table"""
    sanity_episodes: int = 2
    """episode lengths of random actions per env for the random-policy table"""
    rows_out: str | None = None
    """append one JSON row per measurement to this file"""


def random_actions(key, num_envs: int, action_size: int) -> jax.Array:
    return jax.random.uniform(key, (num_envs, action_size), minval=-1.0, maxval=1.0)


def measure_throughput(env: envs.Env, num_envs: int, args: Args) -> dict:
    """Compile time (s) and env steps/s of `scan_steps` vmapped steps of `num_envs`."""

    def run(state, key):
        def one_step(state, step_key):
            action = random_actions(step_key, num_envs, env.action_size)
            return env.step_batch(state, action), None

        state, _ = jax.lax.scan(one_step, state, jax.random.split(key, args.scan_steps))
        return state

    state = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.key(0), num_envs))
    start = time.perf_counter()
    compiled = jax.jit(run, donate_argnums=0).lower(state, jax.random.key(1)).compile()
    compile_seconds = time.perf_counter() - start
    state = jax.block_until_ready(compiled(state, jax.random.key(2)))  # warm-up
    calls, start = 0, time.perf_counter()
    while True:
        state = compiled(state, jax.random.key(3 + calls))
        calls += 1
        if calls % 4 == 0 or calls == 1:
            jax.block_until_ready(state)
            elapsed = time.perf_counter() - start
            if elapsed >= args.seconds:
                break
    jax.block_until_ready(state)
    elapsed = time.perf_counter() - start
    return dict(
        compile_seconds=compile_seconds,
        steps_per_second=calls * args.scan_steps * num_envs / elapsed,
        load=os.getloadavg()[0],  # other processes on this machine during the measurement
    )


def measure_random_policy(env: envs.Env, args: Args) -> dict:
    """Mean return and success rate of uniform random actions over finished episodes."""
    num_envs, num_steps = args.sanity_envs, args.sanity_episodes * env.episode_length

    def run(key):
        reset_key, run_key = jax.random.split(key)
        state = jax.vmap(env.reset)(jax.random.split(reset_key, num_envs))

        def one_step(carry, step_key):
            state, ret, solved = carry
            action = random_actions(step_key, num_envs, env.action_size)
            state = env.step_batch(state, action)
            ret = ret + state.reward
            solved = solved | state.success
            done = state.terminated | state.truncated
            out = (done, ret, solved)
            return (state, jnp.where(done, 0.0, ret), solved & ~done), out

        zeros = jnp.zeros(num_envs)
        carry = (state, zeros, zeros.astype(bool))
        _, (done, ret, solved) = jax.lax.scan(one_step, carry, jax.random.split(run_key, num_steps))
        return done, ret, solved

    done, ret, solved = jax.device_get(jax.jit(run)(jax.random.key(0)))
    has_success = not isinstance(env.family, LinearReward)
    return dict(
        episodes=int(done.sum()),
        mean_return=float(ret[done].mean()),
        success_rate=float(solved[done].mean()) if has_success else None,
    )


def settings_of(env) -> str:
    return env.settings.describe() if hasattr(env, "settings") else "—"


def main(args: Args) -> None:
    for env_id in args.envs:
        if env_id not in envs.ENV_IDS:
            print(f"{env_id}: not registered, skipped", flush=True)
            continue
        if args.throughput:
            env = envs.make(env_id)
            for n in args.num_envs:
                row = measure_throughput(env, n, args)
                print(
                    f"{env_id} N={n}: {row['steps_per_second']:,.0f} steps/s, "
                    f"compile {row['compile_seconds']:.1f} s",
                    flush=True,
                )
                head = {"kind": "throughput", "env": env_id, "physics": settings_of(env)}
                append_row(args.rows_out, {**head, "num_envs": n, **row})
        if args.sanity:
            for label, kwargs in FAMILIES.get(env_id, [("default", {})]):
                env = envs.make(env_id, **kwargs)
                row = measure_random_policy(env, args)
                print(f"{env_id} [{label}]: {row}", flush=True)
                head = {"kind": "random_policy", "env": env_id, "family": label}
                append_row(args.rows_out, {**head, "episode_length": env.episode_length, **row})


if __name__ == "__main__":
    main(tyro.cli(Args))
