"""Hindsight EM Fig. 4 at CPU scale: hindsight EM against DDPG + HER with 0/1 rewards and
with -1/0 rewards, on the MJX goal-reaching arms `reacher` (2-D fingertip goals) and
`arm_reach` (3-D end-effector goals). Tang & Kucukelbir (2021) report that EM does much
better than HER with 0/1 rewards and about as well as HER with -1/0 rewards.

Each config runs its algorithm in-process (`algos/hindsight_em.py`, `algos/her.py`) with
`--num-seeds` seeds vmapped in one program, then reads the run's `metrics.csv`. EM and
both HERs get the same env-step budget on an env. Writes `<out-dir>/img/hindsight_em_fig4.png`
(eval success against env steps) and a table into `<out-dir>/hindsight_em.md` between the
`hindsight_em_fig4` marker comments, from the newest finished run of every config under
`--run-dir`.

    python experiments/hindsight_em_fig4.py
    python experiments/hindsight_em_fig4.py --only em-reacher her01-reacher --scale 0.5
    python experiments/hindsight_em_fig4.py --report-only
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from common import cli  # noqa: E402
from common.logger import read_metrics  # noqa: E402
from common.scripts import load_algo  # noqa: E402
from experiments.report import eval_curves, write_between_markers  # noqa: E402

RESULT_FILE = "hindsight_em_figure.json"  # wall time of a finished run, next to its metrics
NUM_CHUNKS = 10  # evaluation points per run


@dataclass(frozen=True)
class Config:
    name: str  # also the run subdirectory
    algo: str  # file in algos/
    label: str  # curve and table label
    env_id: str
    total_timesteps: int  # env steps per seed at --scale 1
    env_kwargs: tuple[str, ...] = ()
    flags: dict = field(default_factory=dict)  # non-default Args of the algorithm


# The budget is the same for the three methods of an env. The buffer holds every run whole.
# Every algorithm at its defaults otherwise: on reacher (one seed, 40k steps) EM's defaults
# reached 0.29 eval success, its point-navigation setting of hindsight_em_scaling.py
# (learning rate 1e-4, 64 gradient steps) 0.16, an initial std of 0.3 0.19.
BUDGETS = {"reacher": 40_000, "arm_reach": 80_000}
BUFFER = {"buffer_size": 100_000}
METHODS = (
    ("em", "hindsight_em", "hindsight EM", BUFFER),
    ("her01", "her", "DDPG + HER, 0/1 rewards", BUFFER | {"reward_convention": "0/1"}),
    ("her", "her", "DDPG + HER, -1/0 rewards", BUFFER),
)
CONFIGS = tuple(
    Config(f"{prefix}-{env_id}", algo, label, env_id, budget, (), flags)
    for env_id, budget in BUDGETS.items()
    for prefix, algo, label, flags in METHODS
)
CONFIG_NAMES = tuple(c.name for c in CONFIGS)
PANELS = (
    ("reacher", "reacher (2-D goals, margin 0.01)"),
    ("arm_reach", "arm_reach (3-D goals, margin 0.05)"),
)


@dataclass(frozen=True)
class Args:
    out_dir: str = "docs"
    """where hindsight_em.md is updated and img/hindsight_em_fig4.png written"""
    num_seeds: int = 3
    """seeds per config, trained side by side in one vmapped program"""
    seed: int = 1
    """first seed; runs use seed, seed+1, ..."""
    scale: float = 1.0
    """multiplies every config's env-step budget"""
    only: tuple[str, ...] = ()
    """run only these configs (names as in CONFIGS, e.g. em-reacher her01-arm_reach)"""
    report_only: bool = False
    """train nothing; rebuild the table and figure from the runs found"""
    run_dir: str = "runs/hindsight_em_fig4"
    """parent of the runs' logs; each config gets its own subdirectory"""

    def __post_init__(self):
        check_args(self, CONFIG_NAMES)


def check_args(args, names: tuple[str, ...]) -> None:
    if args.num_seeds <= 0:
        raise cli.UsageError(f"--num-seeds must be positive, got {args.num_seeds}")
    if args.scale <= 0:
        raise cli.UsageError(f"--scale must be positive, got {args.scale}")
    unknown = sorted(set(args.only) - set(names))
    if unknown:
        raise cli.UsageError(
            f"unknown config {unknown[0]!r} in --only; choose from {', '.join(names)}"
        )


def iteration_steps(config: Config) -> int:
    """Env steps per seed of one iteration of the config's script."""
    module = load_algo(config.algo)
    probe = module.Args(
        env_id=config.env_id, env_kwargs=config.env_kwargs, **config.flags, quiet=True
    )
    steps = probe.num_envs
    if config.algo == "hindsight_em":  # an iteration collects 16 episodes' worth
        steps *= module.steps_per_env(probe, module.make_env(probe))
    return steps


def budget(config: Config, scale: float, unit: int) -> int:
    """The config's env steps per seed times `scale`, rounded to whole `unit`s."""
    return max(1, round(config.total_timesteps * scale / unit)) * unit


def run_config(
    config: Config, parent: str, seed: int, num_seeds: int, total: int, num_chunks: int = NUM_CHUNKS
) -> None:
    """Train one config (seeds seed, ..., seed + num_seeds - 1 in one program) into a new
    run directory under `parent` and record the wall time there."""
    module = load_algo(config.algo)
    os.makedirs(parent, exist_ok=True)
    before = set(os.listdir(parent))
    algo_args = module.Args(
        env_id=config.env_id,
        env_kwargs=config.env_kwargs,
        seed=seed,
        num_seeds=num_seeds,
        num_chunks=num_chunks,
        total_timesteps=total,
        run_dir=parent,
        quiet=True,
        **config.flags,
    )
    seeds = f"{seed}..{seed + num_seeds - 1}"
    print(f"== {config.name}: {config.algo}.py, {total} env steps per seed, seeds {seeds}")
    start = time.time()
    module.main(algo_args)
    wall = time.time() - start
    new = sorted(set(os.listdir(parent)) - before)
    if len(new) != 1:
        raise RuntimeError(f"expected one new run directory in {parent}, found {new}")
    with open(os.path.join(parent, new[0], RESULT_FILE), "w") as f:
        json.dump({"config": config.name, "wall_seconds": wall}, f)


def finished_run(parent: str) -> str | None:
    """The newest run directory under `parent` with a result file, or None."""
    if not os.path.isdir(parent):
        return None
    done = [
        os.path.join(parent, d)
        for d in os.listdir(parent)
        if os.path.exists(os.path.join(parent, d, RESULT_FILE))
    ]
    return max(done, key=os.path.getmtime) if done else None


def mark_stopped(run: str, wall_seconds: float) -> None:
    """Record a run that was stopped before its budget, so that its curves up to the last
    evaluation enter the table and figure, labelled as stopped."""
    with open(os.path.join(run, RESULT_FILE), "w") as f:
        json.dump(
            {
                "config": os.path.basename(os.path.dirname(run.rstrip("/"))),
                "wall_seconds": wall_seconds,
                "stopped": True,
            },
            f,
        )


def read_run(config: Config, run: str) -> dict:
    """Eval success curves (steps (T,), success (T, seeds)) and wall time of a run."""
    with open(os.path.join(run, RESULT_FILE)) as f:
        result = json.load(f)
    steps, success = eval_curves(read_metrics(run), "eval/success_rate")
    return {
        "config": config,
        "steps": steps,
        "success": success,
        "wall": result["wall_seconds"],
        "stopped": result.get("stopped", False),
        "run": run,
    }


def load_result(config: Config, run_dir: str) -> dict | None:
    run = finished_run(os.path.join(run_dir, config.name))
    return None if run is None else read_run(config, run)


def table(results: list[dict]) -> str:
    lines = [
        "| env | algorithm | env steps per seed | final eval success (mean ± std) | per seed "
        "| best eval success (mean over seeds) | wall time | run |",
        "| --- | --- | ---: | ---: | --- | ---: | ---: | --- |",
    ]
    for r in results:
        c, final = r["config"], r["success"][-1]
        per_seed = ", ".join(f"{v:.2f}" for v in final)
        lines.append(
            f"| {c.env_id} | {c.label} | {r['steps'][-1]:,}"
            f"{' (stopped early)' if r.get('stopped') else ''} "
            f"| {final.mean():.2f} ± {final.std():.2f} | {per_seed} "
            f"| {r['success'].mean(axis=1).max():.2f} | {r['wall'] / 60:.1f} min "
            f"| `{os.path.relpath(r['run'], ROOT)}` |"
        )
    return "\n".join(lines)


def plot(results: list[dict], panels, path: str) -> None:
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.5), squeeze=False)
    labels = list(dict.fromkeys(r["config"].label for r in results))
    for ax, (env_id, title) in zip(axes[0], panels, strict=True):
        for r in results:
            if r["config"].env_id != env_id:
                continue
            color = f"C{labels.index(r['config'].label)}"
            mean, std = r["success"].mean(axis=1), r["success"].std(axis=1)
            seeds = r["success"].shape[1]
            ax.plot(r["steps"], mean, color=color, label=f"{r['config'].label} ({seeds} seeds)")
            ax.fill_between(r["steps"], mean - std, mean + std, color=color, alpha=0.2)
        ax.set_title(title)
        ax.set_xlabel("env steps per seed")
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize="small")
    axes[0][0].set_ylabel("eval success rate (mean ± std over seeds)")
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_figure(args, configs, panels, figure: str) -> list[dict]:
    """Train the selected configs, then write `<figure>.png` and the table between the
    `<figure>` markers of hindsight_em.md from every finished config."""
    if not args.report_only:
        unit = NUM_CHUNKS * int(np.lcm.reduce([iteration_steps(c) for c in configs]))
        for config in configs:
            if not args.only or config.name in args.only:
                parent = os.path.join(args.run_dir, config.name)
                total = budget(config, args.scale, unit)
                run_config(config, parent, args.seed, args.num_seeds, total)
    results = [r for c in configs if (r := load_result(c, args.run_dir)) is not None]
    image = os.path.join(args.out_dir, "img", f"{figure}.png")
    plot(results, panels, image)
    body = (
        f"{table(results)}\n\n![eval success vs env steps]({os.path.relpath(image, args.out_dir)})"
    )
    write_between_markers(os.path.join(args.out_dir, "hindsight_em.md"), figure, body)
    print(table(results))
    print(f"wrote {image} and {os.path.join(args.out_dir, 'hindsight_em.md')}")
    return results


def main(args: Args) -> list[dict]:
    return run_figure(args, CONFIGS, PANELS, "hindsight_em_fig4")


if __name__ == "__main__":
    main(cli.parse(Args))
