"""How training throughput scales: with parallel envs, with seeds, with devices, and
where an iteration's time goes (env side vs updates).

Every number is training env steps per second of the real `train_chunk` of an
`algos/` script (one seed unless said otherwise, `learning_starts=0`, the
script's default batch and network), AOT-compiled the way `common/training.run`
compiles it, one warm-up call, then the median of `--repeats` timed calls.

1. **num_envs**: each online script on a pure-JAX env, and SAC on the MJX
   reacher, at 1 to 4096 envs; a PNG of steps/s against envs.
2. **Seeds**: SAC with 1, 8 and 32 seeds vmapped in one program; wall time per
   seed and env step.
3. **Env side vs updates**: SAC timed with 1 and with 5 gradient steps per
   iteration; the difference gives the cost of one update and, by extrapolating
   to zero updates, of the env side alone (act, step, insert), which is compared
   with env-only stepping (`jax.vmap(env.step)` in a scan).
4. **Devices**: SAC with its envs and batches split over 1, 2 and 4 devices
   (`--num-devices`). On a CPU these are `--xla_force_host_platform_device_count`
   devices sharing the same cores, so this measures the cost of the collectives,
   not a speed-up; each count runs in its own process.

    python benchmarks/scaling.py          # docs/img/scaling.png, docs/performance.md
    python benchmarks/scaling.py --quick  # a smoke run of every part, writes nothing
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

from common import cli, training  # noqa: E402
from common.scripts import ROOT, load_algo  # noqa: E402
from harness.report import write_between_markers  # noqa: E402

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
    """seed counts of part 2 (SAC on pointnav, 64 envs per seed)"""
    devices: tuple[int, ...] = (1, 2, 4)
    """device counts of part 4 (SAC on pointnav, 1024 envs)"""
    iterations: int = 20
    """iterations (every env steps once) in a timed chunk"""
    repeats: int = 3
    """timed calls; the median is reported"""
    quick: bool = False
    """tiny grid, writes nothing"""
    out: str = "docs/performance.md"
    """where the section goes"""
    image: str = "docs/img/scaling.png"
    """the num_envs plot"""
    cache: str | None = "benchmarks/results/scaling.json"
    """finished measurements, reused when the script runs again (delete it to redo all)"""
    probe_devices: int = 0
    """internal: time part 4 with this many devices in this process and print JSON"""


def measure(setup: str, num_envs: int, args: Args, **changes) -> dict:
    """Training env steps/s and compile seconds of one chunk of `setup`; a measurement
    already in `--cache` (same setup, envs, changes and chunk) is read, not redone."""
    key = json.dumps([setup, num_envs, args.iterations, args.repeats, sorted(changes.items())])
    cache = {}
    if args.cache and os.path.exists(args.cache):
        with open(args.cache) as f:
            cache = json.load(f)
    if key not in cache:
        cache[key] = _measure(setup, num_envs, args, **changes)
        if args.cache:
            os.makedirs(os.path.dirname(args.cache) or ".", exist_ok=True)
            with open(args.cache + ".tmp", "w") as f:
                json.dump(cache, f, indent=1)
            os.replace(args.cache + ".tmp", args.cache)
    return cache[key]


def _measure(setup: str, num_envs: int, args: Args, **changes) -> dict:
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
    chunk = devices.lower_chunk(trainer, num_seeds, state).compile()
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
    """Seconds per update and per env-side iteration, from two gradient-step counts."""
    low = measure(setup, num_envs, args, gradient_steps=1)
    high = measure(setup, num_envs, args, gradient_steps=5)
    per_update = (high["chunk_s"] - low["chunk_s"]) / (4 * args.iterations)
    env_side = low["chunk_s"] / args.iterations - per_update
    if per_update <= 0 or env_side <= 0.02 * low["chunk_s"] / args.iterations:
        env_side = float("nan")  # below the timing noise of this run
    _, env_id, env_kwargs, _ = SETUPS[setup]
    return {
        "setup": setup,
        "num_envs": num_envs,
        "update_ms": 1e3 * per_update,
        "updates_per_s": 1 / per_update if per_update > 0 else float("nan"),
        "env_side_sps": num_envs / env_side,  # NaN when below the noise
        "env_only_sps": env_only_sps(env_id, env_kwargs, num_envs, args),
        "train_sps_1_update": low["sps"],
    }


def devices_in_subprocess(count: int, args: Args) -> dict:
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={count}")
    cmd = [sys.executable, os.path.abspath(__file__), "--probe-devices", str(count)]
    cmd += ["--iterations", str(args.iterations), "--repeats", str(args.repeats)]
    cmd += ["--quick"] if args.quick else ["--cache", str(args.cache)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    if done.returncode:
        raise RuntimeError(f"device probe {count} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def fmt(x: float) -> str:
    if x != x:
        return "below noise"
    return f"{x:,.0f}" if x >= 100 else f"{x:.2f}"


def main(args: Args) -> None:
    if args.quick:
        args = dataclasses.replace(args, cache=None)
    if args.probe_devices:
        num_envs = 64 if args.quick else 1024
        print(json.dumps(measure("sac/pointnav", num_envs, args, num_devices=args.probe_devices)))
        return
    grid = (1, 16) if args.quick else args.num_envs
    setups = ("sac/pointnav",) if args.quick else args.setups
    started = time.time()
    load = os.getloadavg()[0]
    rows = []
    for setup in setups:
        for n in grid:
            rows.append(measure(setup, n, args))
            print(f"{setup:22s} N={n:5d} {rows[-1]['sps']:12,.0f} steps/s", flush=True)
    seeds = (1, 2) if args.quick else args.seeds
    seed_rows = [measure("sac/pointnav", 64, args, num_seeds=s) for s in seeds]
    split_n = 16 if args.quick else 1024
    split_setups = ("sac/pointnav",) if args.quick else ("sac/pointnav", "sac/reacher")
    splits = [split_costs(s, split_n, args) for s in split_setups]
    device_rows = [devices_in_subprocess(d, args) for d in ((1, 2) if args.quick else args.devices)]
    load = max(load, os.getloadavg()[0])
    minutes = (time.time() - started) / 60
    print(json.dumps({"seeds": seed_rows, "splits": splits, "devices": device_rows}, indent=1))
    if args.quick:
        return
    plot(rows, args.image)
    body = report(args, rows, seed_rows, splits, device_rows, load, minutes)
    write_between_markers(args.out, "scaling", body)
    print(f"wrote {args.image} and the scaling section of {args.out}")


def plot(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for i, setup in enumerate(dict.fromkeys(r["setup"] for r in rows)):
        mine = [r for r in rows if r["setup"] == setup]
        ax.plot([r["num_envs"] for r in mine], [r["sps"] for r in mine], "o-", color=f"C{i}",
                label=setup)  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("parallel envs (one seed)")
    ax.set_ylabel("training env steps / s")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(args, rows, seed_rows, splits, device_rows, load, minutes) -> str:
    grid = sorted({r["num_envs"] for r in rows})
    lines = [
        f"`python benchmarks/scaling.py` ({os.cpu_count()} CPU cores, "
        f"{jax.default_backend()}; load average up to {load:.1f} during the run, "
        f"{minutes:.0f} min). Training env steps/s, one seed, default batch and networks, "
        "`learning_starts=0`, median of "
        f"{args.repeats} chunks of {args.iterations} iterations.",
        "",
        "| script / env | " + " | ".join(f"{n} envs" for n in grid) + " | compile s |",
        "| --- | " + " | ".join("---:" for _ in grid) + " | ---: |",
    ]
    for setup in dict.fromkeys(r["setup"] for r in rows):
        mine = {r["num_envs"]: r for r in rows if r["setup"] == setup}
        compiles = [r["compile_s"] for r in mine.values()]
        lines.append(
            f"| {setup} | "
            + " | ".join(fmt(mine[n]["sps"]) if n in mine else "" for n in grid)
            + f" | {min(compiles):.0f}–{max(compiles):.0f} |"
        )
    lines += [
        "",
        f"![training steps/s vs envs]({os.path.relpath(args.image, os.path.dirname(args.out))})",
        "",
        "Seeds vmapped in one program (SAC, pointnav, 64 envs per seed):",
        "",
        "| seeds | env steps/s, all seeds | wall seconds per seed per 1k env steps | compile s |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for r in seed_rows:
        per_seed = 1e3 / r["sps"]  # 1k steps of each of S seeds take 1e3 * S / sps seconds
        lines.append(
            f"| {r['num_seeds']} | {fmt(r['sps'])} | {per_seed:.3f} | {r['compile_s']:.0f} |"
        )
    lines += [
        "",
        "Where an iteration's time goes (timed with 1 and 5 gradient steps per iteration):",
        "",
        "| script / env | envs | ms per update | updates/s | env side alone, steps/s | "
        "env-only stepping, steps/s | env side / env-only | "
        "training with 1 update per iteration, steps/s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in splits:
        lines.append(
            f"| {s['setup']} | {s['num_envs']} | {s['update_ms']:.2f} | "
            f"{fmt(s['updates_per_s'])} | "
            f"{fmt(s['env_side_sps'])} | {fmt(s['env_only_sps'])} | "
            f"{s['env_side_sps'] / s['env_only_sps']:.2f} | {fmt(s['train_sps_1_update'])} |"
        )
    base = device_rows[0]["sps"]
    lines += [
        "",
        "Devices (SAC, pointnav, 1024 envs split over `--num-devices`; CPU devices forced "
        "with `XLA_FLAGS`, sharing the same cores):",
        "",
        "| devices | env steps/s | relative to 1 device | compile s |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for r in device_rows:
        lines.append(
            f"| {r['num_devices']} | {fmt(r['sps'])} | {r['sps'] / base:.2f} | "
            f"{r['compile_s']:.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main(cli.parse(Args))
