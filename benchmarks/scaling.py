"""How training throughput scales: with parallel envs, with seeds, with devices, and
where an iteration's time goes (env side vs updates).

Every number is training env steps per second of the real `train_chunk` of an
`algos/` script (one seed unless said otherwise, `learning_starts=0`, the
script's default batch and network), AOT-compiled the way `harness/training.Run.compile`
compiles it, one warm-up call, then the median of `--repeats` timed calls.

1. **num_envs** (`kind` "envs"): each online script on a pure-JAX env, and SAC on the
   MJX reacher, at 1 to 4096 envs.
2. **Seeds** (`kind` "seeds"): SAC with 1, 8 and 32 seeds vmapped in one program; wall
   time per seed and env step.
3. **Env side vs updates** (`kind` "split"): SAC timed with 1 and with 5 gradient steps
   per iteration; the difference gives the cost of one update and, by extrapolating
   to zero updates, of the env side alone (act, step, insert), which is compared
   with env-only stepping (`jax.vmap(env.step)` in a scan).
4. **Devices** (`kind` "devices"): SAC with its envs and batches split over 1, 2 and 4
   devices (`--num-devices`). On a CPU these are `--xla_force_host_platform_device_count`
   devices sharing the same cores, so this measures the cost of the collectives,
   not a speed-up; each count runs in its own process.

Prints one line per measurement; with `--rows-out FILE` it also appends one JSON row per
measurement to FILE, with its part in the field `kind` (`python experiments/sweep.py
scaling` records them; `python experiments/report.py scaling scaling_seeds scaling_split
scaling_devices` writes docs/performance.md's tables).

    python benchmarks/scaling.py
    python benchmarks/scaling.py --quick  # a smoke run of every part
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402

from harness import cli, training  # noqa: E402
from harness.algos_loader import ROOT, load_algo  # noqa: E402
from harness.records import append_row  # noqa: E402

# (label, algo, env_id, env_kwargs, extra Args)
SETUPS = {
    "her_dqn/bitflip": ("her_dqn", "bitflip", ("n_bits=10",), {}),
    "her/pointnav": ("her", "pointnav", ("dim=2",), {}),
    "sac/pointnav": ("hipi_rl", "pointnav", ("dim=2",), {"relabel": "none"}),
    "hipi_rl/pointnav": ("hipi_rl", "pointnav", ("dim=2",), {"relabel": "inverse_rl"}),
    "hindsight_em/pointnav": ("hindsight_em", "pointnav", ("dim=2",), {}),
    "sac/reacher": ("hipi_rl", "reacher", (), {"relabel": "none"}),
}


@dataclass(frozen=True)
class Args:
    num_envs: tuple[int, ...] = (1, 16, 256, 4096)
    """env counts of part 1"""
    setups: tuple[str, ...] = tuple(SETUPS)
    """script/env pairs of part 1"""
    seeds: tuple[int, ...] = (1, 8, 32)
    """seed counts of part 2 (SAC on pointnav)"""
    seed_num_envs: int = 64
    """envs per seed in part 2"""
    split_setups: tuple[str, ...] = ("sac/pointnav", "sac/reacher")
    """script/env pairs of part 3"""
    split_num_envs: int = 1024
    """envs of part 3"""
    devices: tuple[int, ...] = (1, 2, 4)
    """device counts of part 4 (SAC on pointnav)"""
    device_num_envs: int = 1024
    """envs (over all devices) of part 4"""
    iterations: int = 20
    """iterations (every env steps once) in a timed chunk"""
    repeats: int = 3
    """timed calls; the median is reported"""
    quick: bool = False
    """smoke run: SAC on pointnav only, tiny grids, 2 iterations, 1 repeat"""
    rows_out: str | None = None
    """append one JSON row per measurement to this file"""
    probe_devices: int = 0
    """internal: time part 4 with this many devices in this process and print JSON"""

    def __post_init__(self):
        unknown = set(self.setups + self.split_setups) - set(SETUPS)
        if unknown:
            raise cli.UsageError(f"unknown setups {sorted(unknown)}; known: {', '.join(SETUPS)}")


def effective(args: Args) -> Args:
    """The settings --quick stands for."""
    if not args.quick:
        return args
    return dataclasses.replace(
        args,
        num_envs=(1, 16),
        setups=("sac/pointnav",),
        seeds=(1, 2),
        seed_num_envs=16,
        split_setups=("sac/pointnav",),
        split_num_envs=16,
        devices=(1, 2),
        device_num_envs=64,
        iterations=2,
        repeats=1,
    )


def measure(setup: str, num_envs: int, args: Args, **changes) -> dict:
    """Training env steps/s and compile seconds of one chunk of `setup`."""
    algo, env_id, env_kwargs, extra = SETUPS[setup]
    module = load_algo(algo)
    fields = {**extra, **changes}
    num_seeds = fields.pop("num_seeds", 1)
    num_devices = fields.pop("num_devices", 1)
    probe = module.Args(  # only to build the env and size the chunk
        env_id=env_id,
        env_kwargs=env_kwargs,
        num_envs=num_envs,
        total_timesteps=10**9,
        buffer_size=10**9,
        quiet=True,
    )
    env = module.make_env(probe)
    per_iter = num_envs  # env steps of one iteration
    if algo == "hindsight_em":  # an iteration collects whole episodes
        per_iter *= module.steps_per_env(probe, env)
    episode = env.episode_length
    run_args = module.Args(
        env_id=env_id,
        env_kwargs=env_kwargs,
        num_envs=num_envs,
        num_seeds=num_seeds,
        total_timesteps=args.iterations * per_iter,
        num_chunks=1,
        buffer_size=max(4 * episode * num_envs, 20_000),
        num_devices=num_devices,
        quiet=True,
        **fields,
    )
    if hasattr(run_args, "learning_starts"):  # learn from the first iteration
        run_args = dataclasses.replace(run_args, learning_starts=0)
    trainer = module.make_train(run_args)
    init_all = lambda: training.over_seeds(trainer.init, num_seeds)(  # noqa: E731
        training.seed_keys(0, num_seeds)
    )
    target = jax.eval_shape(init_all)
    devices = training.layout(num_devices, target)
    state = devices.jit(init_all, out_shardings=devices.state)()
    start = time.perf_counter()
    chunk = devices.lower_chunk(trainer.train_chunk, num_seeds, state).compile()
    compile_s = time.perf_counter() - start
    state, metrics = jax.block_until_ready(chunk(state))
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        state, metrics = jax.block_until_ready(chunk(state))
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    return {
        "setup": setup,
        "num_envs": num_envs,
        "num_seeds": num_seeds,
        "num_devices": num_devices,
        "gradient_steps": run_args.gradient_steps,
        "sps": trainer.steps_per_chunk * num_seeds / seconds,
        "chunk_s": seconds,
        "steps_per_chunk": trainer.steps_per_chunk,
        "compile_s": compile_s,
    }


def env_only_sps(env_id: str, env_kwargs: tuple[str, ...], num_envs: int, args: Args) -> float:
    """Steps/s of `jax.vmap(env.step)` with uniform random actions, in a jitted scan."""
    env = cli.make_env(env_id, env_kwargs)

    def rollout(state, key):
        def body(state, key):
            action = jax.random.uniform(key, (num_envs, env.action_size), minval=-1, maxval=1)
            return jax.vmap(env.step)(state, action), None

        return jax.lax.scan(body, state, jax.random.split(key, args.iterations))[0]

    state = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.key(0), num_envs))
    run = jax.jit(rollout).lower(state, jax.random.key(1)).compile()
    state = jax.block_until_ready(run(state, jax.random.key(1)))
    times = []
    for i in range(args.repeats):
        start = time.perf_counter()
        state = jax.block_until_ready(run(state, jax.random.key(i + 2)))
        times.append(time.perf_counter() - start)
    return args.iterations * num_envs / statistics.median(times)


def split_costs(setup: str, num_envs: int, args: Args) -> dict:
    """Seconds per update and per env-side iteration, from two gradient-step counts; a
    quantity below the timing noise of this run is None."""
    low = measure(setup, num_envs, args, gradient_steps=1)
    high = measure(setup, num_envs, args, gradient_steps=5)
    per_update = (high["chunk_s"] - low["chunk_s"]) / (4 * args.iterations)
    env_side = low["chunk_s"] / args.iterations - per_update
    _, env_id, env_kwargs, _ = SETUPS[setup]
    env_only = env_only_sps(env_id, env_kwargs, num_envs, args)
    env_side_sps = None
    if per_update > 0 and env_side > 0.02 * low["chunk_s"] / args.iterations:
        env_side_sps = num_envs / env_side
    return {
        "setup": setup,
        "num_envs": num_envs,
        "update_ms": 1e3 * per_update,
        "updates_per_s": 1 / per_update if per_update > 0 else None,
        "env_side_sps": env_side_sps,
        "env_only_sps": env_only,
        "env_side_over_env_only": env_side_sps / env_only if env_side_sps else None,
        "train_sps_1_update": low["sps"],
    }


def devices_in_subprocess(count: int, args: Args) -> dict:
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={count}")
    cmd = [sys.executable, os.path.abspath(__file__), "--probe-devices", str(count)]
    cmd += ["--device-num-envs", str(args.device_num_envs)]
    cmd += ["--iterations", str(args.iterations), "--repeats", str(args.repeats)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    if done.returncode:
        raise RuntimeError(f"device probe {count} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def show(x) -> str:
    if x is None:
        return "below noise"
    if isinstance(x, str | int):
        return str(x)
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def record(args: Args, kind: str, row: dict) -> None:
    """Print a measurement and append it to --rows-out, its part in `kind`."""
    print(f"{kind}: " + ", ".join(f"{k} {show(v)}" for k, v in row.items()), flush=True)
    append_row(args.rows_out, {"kind": kind, **row})


def main(args: Args) -> None:
    args = effective(args)
    if args.probe_devices:
        row = measure("sac/pointnav", args.device_num_envs, args, num_devices=args.probe_devices)
        print(json.dumps(row))
        return
    for setup in args.setups:
        for n in args.num_envs:
            record(args, "envs", measure(setup, n, args))
    for s in args.seeds:
        row = measure("sac/pointnav", args.seed_num_envs, args, num_seeds=s)
        # 1k env steps of each of S seeds take 1e3 * S / sps seconds
        record(args, "seeds", {**row, "seconds_per_seed_per_1k_steps": 1e3 / row["sps"]})
    for setup in args.split_setups:
        record(args, "split", split_costs(setup, args.split_num_envs, args))
    rows = [devices_in_subprocess(d, args) for d in args.devices]
    base = next((r["sps"] for r in rows if r["num_devices"] == 1), None)
    for row in rows:
        relative = row["sps"] / base if base else None
        record(args, "devices", {**row, "relative_to_1_device": relative})


if __name__ == "__main__":
    main(cli.parse(Args))
