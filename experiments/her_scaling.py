"""HER as the problem grows: eval success vs env steps for DQN + HER on bit flip
(n = 10, 20, 30 bits; Andrychowicz et al. 2017, Fig. 1) and DDPG + HER on N-D
point navigation (N = 2, 4, 8; Tang & Kucukelbir 2021, Fig. 3).

Each config runs its algorithm in-process (`algos/her_dqn.py`, `algos/her.py`)
with `--num-seeds` seeds vmapped in one program, then reads the run's
`metrics.csv`. Writes `<out-dir>/img/her_scaling.png` and a results table into
`<out-dir>/her.md` between the `her_scaling` marker comments. Table and figure
cover the newest finished run of every config under `--run-dir`, so `--only`
reruns some configs and keeps the others.

    python experiments/her_scaling.py
    python experiments/her_scaling.py --only bitflip-10 pointnav-2 --scale 0.5
    python experiments/her_scaling.py --with-none
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Literal

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from common import cli  # noqa: E402
from common.logger import read_metrics  # noqa: E402
from common.scripts import load_algo  # noqa: E402
from experiments.report import write_between_markers  # noqa: E402

SOLVED = 0.9  # "solved" threshold on the mean over seeds of eval success
RESULT_FILE = "her_scaling.json"  # wall time, written next to a finished run's metrics.csv

ConfigName = Literal[
    "bitflip-10", "bitflip-20", "bitflip-30", "pointnav-2", "pointnav-4", "pointnav-8"
]


@dataclass(frozen=True)
class Config:
    name: str
    algo: str  # file in algos/
    env_id: str
    env_kwargs: tuple[str, ...]
    label: str  # legend entry
    total_timesteps: int  # env steps per seed at --scale 1
    flags: dict = field(default_factory=dict)  # non-default Args of the algorithm


# Same hyperparameters across sizes within an algorithm; only the budget grows. The
# one non-default flag: a 300k-transition buffer holds every run below whole, as the
# 1M default would, without allocating ~0.5 GB per seed for 30 bits that stays empty.
FLAGS = {"buffer_size": 300_000}
CONFIGS = (
    Config("bitflip-10", "her_dqn", "bitflip", ("n_bits=10",), "n = 10", 20_000, FLAGS),
    Config("bitflip-20", "her_dqn", "bitflip", ("n_bits=20",), "n = 20", 60_000, FLAGS),
    Config("bitflip-30", "her_dqn", "bitflip", ("n_bits=30",), "n = 30", 150_000, FLAGS),
    Config("pointnav-2", "her", "pointnav", ("dim=2",), "N = 2", 20_000, FLAGS),
    Config("pointnav-4", "her", "pointnav", ("dim=4",), "N = 4", 40_000, FLAGS),
    Config("pointnav-8", "her", "pointnav", ("dim=8",), "N = 8", 150_000, FLAGS),
)
PANELS = (("bitflip", "DQN + HER, bit flip"), ("pointnav", "DDPG + HER, N-D point navigation"))


@dataclass(frozen=True)
class Args:
    out_dir: str = "docs"
    """where her.md is updated and img/her_scaling.png written"""
    num_seeds: int = 3
    """seeds per config, trained side by side in one vmapped program"""
    seed: int = 1
    """first seed; runs use seed, seed+1, ..."""
    scale: float = 1.0
    """multiplies every config's env-step budget"""
    only: tuple[ConfigName, ...] = ()
    """run only these configs; empty runs all six"""
    with_none: bool = False
    """also run every config with `--strategy none`, the no-relabeling baseline"""
    report_only: bool = False
    """train nothing; rebuild the table and figure from the runs under --run-dir"""
    run_dir: str = "runs/her_scaling"
    """parent of the runs' logs; each config gets its own subdirectory"""

    def __post_init__(self):
        if self.num_seeds <= 0:
            raise cli.UsageError(f"--num-seeds must be positive, got {self.num_seeds}")
        if self.scale <= 0:
            raise cli.UsageError(f"--scale must be positive, got {self.scale}")


def budget(config: Config, args: Args, num_envs: int, num_chunks: int) -> int:
    """Scaled budget, a whole number of chunks of whole iterations (so it is exact)."""
    unit = num_envs * num_chunks
    return max(1, round(config.total_timesteps * args.scale / unit)) * unit


def run_name(config: Config, strategy: str) -> str:
    return config.name if strategy != "none" else f"{config.name}-none"


def run_config(config: Config, strategy: str, args: Args) -> None:
    """Train one config and record its wall time next to the run's metrics."""
    module = load_algo(config.algo)
    defaults = module.Args()
    parent = os.path.join(args.run_dir, run_name(config, strategy))
    os.makedirs(parent, exist_ok=True)
    before = set(os.listdir(parent))
    algo_args = module.Args(
        env_id=config.env_id,
        env_kwargs=config.env_kwargs,
        seed=args.seed,
        num_seeds=args.num_seeds,
        total_timesteps=budget(config, args, defaults.num_envs, defaults.num_chunks),
        strategy=strategy,
        run_dir=parent,
        quiet=True,
        **config.flags,
    )
    print(
        f"== {run_name(config, strategy)}: {config.algo}.py {' '.join(config.env_kwargs)}, "
        f"{algo_args.total_timesteps} env steps x {args.num_seeds} seeds",
        flush=True,
    )
    start = time.time()
    module.main(algo_args)
    wall = time.time() - start
    new = sorted(set(os.listdir(parent)) - before)
    if len(new) != 1:
        raise RuntimeError(f"expected one new run directory in {parent}, found {new}")
    with open(os.path.join(parent, new[0], RESULT_FILE), "w") as f:
        json.dump({"config": config.name, "strategy": strategy, "wall_seconds": wall}, f)


def load_result(config: Config, strategy: str, run_dir: str) -> dict | None:
    """Per-seed eval curves of the newest finished run of a config, or None."""
    parent = os.path.join(run_dir, run_name(config, strategy))
    done = [
        d
        for d in (os.listdir(parent) if os.path.isdir(parent) else [])
        if os.path.exists(os.path.join(parent, d, RESULT_FILE))
    ]
    if not done:
        return None
    run = os.path.join(parent, max(done, key=lambda d: os.path.getmtime(os.path.join(parent, d))))
    with open(os.path.join(run, RESULT_FILE)) as f:
        wall = json.load(f)["wall_seconds"]
    metrics = read_metrics(run)
    steps, num_seeds = np.unique(metrics["step"]), int(metrics["seed"].max()) + 1
    curves = {}  # metric -> (T, seeds)
    for metric in ("eval/success_rate", "eval/final_distance"):
        curves[metric] = np.full((len(steps), num_seeds), np.nan)
        for i, step in enumerate(steps):
            rows = metrics["step"] == step
            curves[metric][i, metrics["seed"][rows]] = metrics[metric][rows]
    return {
        "config": config,
        "strategy": strategy,
        "steps": steps,
        "success": curves["eval/success_rate"],
        "distance": curves["eval/final_distance"],
        "wall": wall,
        "run": run,
    }


def first_solved(result: dict) -> str:
    mean = result["success"].mean(axis=1)
    hit = np.flatnonzero(mean >= SOLVED)
    return f"{result['steps'][hit[0]]:,}" if hit.size else "not reached"


def table(results: list[dict]) -> str:
    lines = [
        "| config | strategy | env steps per seed | final eval success (mean ± std) "
        f"| per seed | first step with mean ≥ {SOLVED} | final eval distance | wall time |",
        "| --- | --- | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for r in results:
        c, final = r["config"], r["success"][-1]
        per_seed = ", ".join(f"{v:.2f}" for v in final)
        lines.append(
            f"| {c.algo}.py {c.env_id} {' '.join(c.env_kwargs)} | {r['strategy']} "
            f"| {r['steps'][-1]:,} | {final.mean():.2f} ± {final.std():.2f} | {per_seed} "
            f"| {first_solved(r)} | {r['distance'][-1].mean():.2f} | {r['wall'] / 60:.1f} min |"
        )
    return "\n".join(lines)


def plot(results: list[dict], path: str, seeds: str) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    for ax, (env_id, title) in zip(axes, PANELS, strict=True):
        mine = [r for r in results if r["config"].env_id == env_id]
        labels = list(dict.fromkeys(r["config"].label for r in mine))
        for r in mine:
            color = f"C{labels.index(r['config'].label)}"
            mean, std = r["success"].mean(axis=1), r["success"].std(axis=1)
            none = r["strategy"] == "none"
            label = r["config"].label + (", none" if none else ", future")
            ax.plot(r["steps"], mean, color=color, ls="--" if none else "-", label=label)
            ax.fill_between(r["steps"], mean - std, mean + std, color=color, alpha=0.2, lw=0)
        ax.set_title(f"{title}\n(dashed: --strategy none, no relabeling)", fontsize="medium")
        ax.set_xlabel("env steps per seed")
        ax.xaxis.set_major_formatter(lambda x, _: f"{x / 1000:.0f}k")
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
        if mine:
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3, fontsize="small")
    axes[0].set_ylabel(f"eval success rate (mean ± std, {seeds} seeds)")
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(args: Args) -> list[dict]:
    chosen = [c for c in CONFIGS if not args.only or c.name in args.only]
    if args.report_only:
        chosen = []
    for config in chosen:
        for strategy in ("future", "none") if args.with_none else ("future",):
            run_config(config, strategy, args)
    results = [
        result
        for config in CONFIGS
        for strategy in ("future", "none")
        if (result := load_result(config, strategy, args.run_dir)) is not None
    ]
    seeds = "/".join(str(n) for n in sorted({r["success"].shape[1] for r in results}))
    wall = {}  # strategy -> minutes
    for r in results:
        wall[r["strategy"]] = wall.get(r["strategy"], 0.0) + r["wall"] / 60
    image = os.path.join(args.out_dir, "img", "her_scaling.png")
    plot(results, image, seeds)
    body = (
        f"{table(results)}\n\n"
        f"{seeds} seeds per config. Total wall time (compilation included): "
        + ", ".join(f"{m:.1f} min for strategy {s}" for s, m in wall.items())
        + ".\n\n"
        f"![eval success vs env steps]({os.path.relpath(image, args.out_dir)})"
    )
    write_between_markers(os.path.join(args.out_dir, "her.md"), "her_scaling", body)
    print(table(results))
    print(f"wrote {image} and {os.path.join(args.out_dir, 'her.md')}")
    return results


if __name__ == "__main__":
    main(cli.parse(Args))
