"""What inverse-RL relabeling costs: HIPI-RL's training iteration against plain SAC's.

`algos/hipi_rl.py --relabel inverse_rl` and `--relabel none` are the same program but
for the relabeling step, so the ratio of their iteration times, measured in one process,
is the price of relabeling. Every row is one `train_chunk` of the script (one seed, the
default 16 envs and 2 gradient steps per iteration, `learning_starts=0`), AOT-compiled
as `harness/training.Run.compile` compiles it, one warm-up call, then the median of
`--repeats` timed calls; the strategies of one (env, batch) pair are timed in turns, so
that a change in the machine's load falls on all of them alike.

    python benchmarks/relabel_cost.py
    python benchmarks/relabel_cost.py --envs pointnav --batch-sizes 128 --repeats 1
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402

from harness import cli, training  # noqa: E402
from harness.algos_loader import load_algo  # noqa: E402
from harness.records import append_row  # noqa: E402

ENVS = {
    "pointnav": ("pointnav", ("dim=2",)),
    "four_rooms": ("four_rooms", ()),
    "reacher": ("reacher", ()),
}
# label -> hipi_rl flags; `none` is plain SAC, the denominator of every ratio
STRATEGIES = {
    "none": {"relabel": "none"},
    "future": {"relabel": "future"},
    "inverse_rl": {"relabel": "inverse_rl"},
    "inverse_rl-no-achieved": {"relabel": "inverse_rl", "achieved_candidates": False},
    "inverse_rl-16": {"relabel": "inverse_rl", "num_candidates": 16},
    "inverse_rl-4": {"relabel": "inverse_rl", "num_candidates": 4},
}


@dataclass(frozen=True)
class Args:
    envs: tuple[str, ...] = tuple(ENVS)
    """envs to measure on"""
    batch_sizes: tuple[int, ...] = (128, 256)
    """batch sizes (128 is hipi_rl's default)"""
    strategies: tuple[str, ...] = tuple(STRATEGIES)
    """relabeling strategies; `none` is always measured"""
    iterations: int = 50
    """iterations (every env steps once, then 2 gradient steps) in a timed chunk"""
    repeats: int = 5
    """timed calls of each strategy, in turns; the median is reported"""
    rows_out: str | None = None
    """append one JSON row per measurement to this file"""

    def __post_init__(self):
        for name, given, known in (
            ("env", self.envs, ENVS),
            ("strategy", self.strategies, STRATEGIES),
        ):
            unknown = sorted(set(given) - set(known))
            if unknown:
                raise cli.UsageError(f"unknown {name} {unknown}; known: {', '.join(known)}")
        if min(self.batch_sizes, default=1) < 2 or self.iterations < 1 or self.repeats < 1:
            raise cli.UsageError("--batch-sizes must be >= 2, --iterations and --repeats >= 1")


def compiled_chunk(env: str, batch_size: int, strategy: str, iterations: int):
    """The compiled chunk of one configuration and a state to run it on."""
    module = load_algo("hipi_rl")
    env_id, env_kwargs = ENVS[env]
    run_args = module.Args(
        env_id=env_id,
        env_kwargs=env_kwargs,
        total_timesteps=iterations * 16,
        num_envs=16,
        num_chunks=1,
        batch_size=batch_size,
        buffer_size=20_000,
        learning_starts=0,
        quiet=True,
        **STRATEGIES[strategy],
    )
    train = module.make_train(run_args)
    init_all = lambda: training.over_seeds(train.init, 1)(training.seed_keys(0, 1))  # noqa: E731
    devices = training.layout(1, jax.eval_shape(init_all))
    state = devices.jit(init_all, out_shardings=devices.state)()
    start = time.perf_counter()
    chunk = devices.lower_chunk(train.train_chunk, 1, state).compile()
    compile_s = time.perf_counter() - start
    state, _ = jax.block_until_ready(chunk(state))  # warm-up; the buffer now holds data
    return chunk, state, compile_s


def measure(env: str, batch_size: int, args: Args) -> list[dict]:
    names = ["none", *(s for s in args.strategies if s != "none")]
    runs = {name: list(compiled_chunk(env, batch_size, name, args.iterations)) for name in names}
    times = {name: [] for name in names}
    for _ in range(args.repeats):
        for name in names:
            chunk, state, _ = runs[name]
            start = time.perf_counter()
            runs[name][1], _ = jax.block_until_ready(chunk(state))
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["none"]) / args.iterations
    rows = []
    for name in names:
        per_iteration = statistics.median(times[name]) / args.iterations
        rows.append(
            {
                "env": env,
                "batch_size": batch_size,
                "relabel": name,
                "iteration_ms": 1e3 * per_iteration,
                "relative_to_sac": per_iteration / base,
                "compile_s": runs[name][2],
            }
        )
    return rows


def main(args: Args) -> None:
    for env in args.envs:
        for batch_size in args.batch_sizes:
            for row in measure(env, batch_size, args):
                print(
                    ", ".join(
                        f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                        for k, v in row.items()
                    ),
                    flush=True,
                )
                append_row(args.rows_out, row)


if __name__ == "__main__":
    main(cli.parse(Args))
