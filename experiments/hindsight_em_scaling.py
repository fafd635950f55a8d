"""Hindsight EM Fig. 3 at CPU scale: final eval success as the problem grows, for
hindsight EM and HER, on bit flipping (n bits; EM vs DQN + HER) and N-D point
navigation (EM vs DDPG + HER). Tang & Kucukelbir (2021) report that EM holds up
as n or N grows while HER degrades.

Each config runs its algorithm in-process (`algos/hindsight_em.py`,
`algos/her_dqn.py`, `algos/her.py`) with `--num-seeds` seeds vmapped in one
program, then reads the run's `metrics.csv`. Within a size, EM and HER get the
same env-step budget. Writes `<out-dir>/img/hindsight_em_scaling.png` and a
table into `<out-dir>/hindsight_em.md` between the `hindsight_em_scaling` marker
comments. Table and figure cover the newest finished run of every config under
`--run-dir`; HER configs that `experiments/her_scaling.py` already ran with the
same budget and flags are read from its run directory (`--her-scaling-dir`)
unless `--rerun-her` is given.

    python experiments/hindsight_em_scaling.py
    python experiments/hindsight_em_scaling.py --only em-bitflip-50 --scale 0.5
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

SOLVED = 0.9  # "solved" threshold on the mean over seeds of eval success
RESULT_FILES = ("hindsight_em_scaling.json", "her_scaling.json")  # ours, then her_scaling's


@dataclass(frozen=True)
class Config:
    name: str  # also the run subdirectory; HER names match experiments/her_scaling.py
    algo: str  # file in algos/
    env_id: str
    size: int  # n bits or N dimensions
    total_timesteps: int  # env steps per seed at --scale 1
    flags: dict = field(default_factory=dict)  # non-default Args of the algorithm


# Budgets grow with the size and are the same for EM and HER at a size (the HER ones of
# n <= 30 and N <= 8 are experiments/her_scaling.py's). The buffer holds every run whole.
BITFLIP_BUDGETS = {10: 20_000, 20: 60_000, 30: 150_000, 40: 250_000, 50: 400_000}
POINTNAV_BUDGETS = {2: 20_000, 4: 40_000, 8: 150_000, 16: 300_000}
BUFFER = {"buffer_size": 300_000}
EM_BITFLIP = {"buffer_size": 400_000}
# Smaller, more numerous M-step updates: on 2-D point navigation (2 seeds, 40k steps) they
# reached 0.98 and 0.99 eval success where the defaults (3e-4, 32 steps) swung 0.8-0.98.
EM_POINTNAV = BUFFER | {"learning_rate": 1e-4, "gradient_steps": 64}
CONFIGS = tuple(
    [
        Config(f"em-bitflip-{n}", "hindsight_em", "bitflip", n, b, EM_BITFLIP)
        for n, b in BITFLIP_BUDGETS.items()
    ]
    + [
        Config(
            f"bitflip-{n}",
            "her_dqn",
            "bitflip",
            n,
            b,
            BUFFER | ({"buffer_size": 400_000} if n > 30 else {}),
        )
        for n, b in BITFLIP_BUDGETS.items()
    ]
    + [
        Config(f"em-pointnav-{d}", "hindsight_em", "pointnav", d, b, EM_POINTNAV)
        for d, b in POINTNAV_BUDGETS.items()
    ]
    + [
        Config(f"pointnav-{d}", "her", "pointnav", d, b, BUFFER)
        for d, b in POINTNAV_BUDGETS.items()
    ]
)
CONFIG_NAMES = tuple(c.name for c in CONFIGS)
LABELS = {"hindsight_em": "hindsight EM", "her_dqn": "DQN + HER", "her": "DDPG + HER"}
PANELS = (
    ("bitflip", "bit flip", "n (bits)"),
    ("pointnav", "N-D point navigation", "N (dimensions)"),
)


@dataclass(frozen=True)
class Args:
    out_dir: str = "docs"
    """where hindsight_em.md is updated and img/hindsight_em_scaling.png written"""
    num_seeds: int = 3
    """seeds per config, trained side by side in one vmapped program"""
    seed: int = 1
    """first seed; runs use seed, seed+1, ..."""
    scale: float = 1.0
    """multiplies every config's env-step budget"""
    only: tuple[str, ...] = ()
    """run only these configs (names as in CONFIGS, e.g. em-bitflip-50 pointnav-16)"""
    rerun_her: bool = False
    """train HER configs even when experiments/her_scaling.py has a finished run of them"""
    report_only: bool = False
    """train nothing; rebuild the table and figure from the runs found"""
    run_dir: str = "runs/hindsight_em_scaling"
    """parent of the runs' logs; each config gets its own subdirectory"""
    her_scaling_dir: str = "runs/her_scaling"
    """where experiments/her_scaling.py keeps its runs (read for HER configs)"""

    def __post_init__(self):
        if self.num_seeds <= 0:
            raise cli.UsageError(f"--num-seeds must be positive, got {self.num_seeds}")
        if self.scale <= 0:
            raise cli.UsageError(f"--scale must be positive, got {self.scale}")
        unknown = sorted(set(self.only) - set(CONFIG_NAMES))
        if unknown:
            raise cli.UsageError(
                f"unknown config {unknown[0]!r} in --only; choose from {', '.join(CONFIG_NAMES)}"
            )


def env_kwargs(config: Config) -> tuple[str, ...]:
    return (f"n_bits={config.size}",) if config.env_id == "bitflip" else (f"dim={config.size}",)


def run_config(config: Config, args: Args) -> None:
    """Train one config and record its wall time next to the run's metrics."""
    module = load_algo(config.algo)
    parent = os.path.join(args.run_dir, config.name)
    os.makedirs(parent, exist_ok=True)
    before = set(os.listdir(parent))
    defaults = module.Args()
    probe = module.Args(
        env_id=config.env_id, env_kwargs=env_kwargs(config), **config.flags, quiet=True
    )
    env = module.make_env(probe)
    per_iter = defaults.num_envs  # env steps of one iteration of the script
    if config.algo == "hindsight_em":
        per_iter *= module.steps_per_env(probe, env)
    num_chunks = defaults.num_chunks
    budget = config.total_timesteps * args.scale
    if config.algo == "hindsight_em":  # an iteration is many env steps (16 episodes' worth)
        iters = max(1, round(budget / per_iter))
        divisors = [d for d in range(10, 26) if iters % d == 0]  # evaluation points
        if divisors:
            num_chunks = min(divisors, key=lambda d: abs(d - num_chunks))
        elif iters > num_chunks:
            iters = round(iters / num_chunks) * num_chunks
        else:
            num_chunks = iters
        total = iters * per_iter
    else:  # whole chunks of whole iterations, as experiments/her_scaling.py
        unit = per_iter * num_chunks
        total = max(1, round(budget / unit)) * unit
    algo_args = module.Args(
        env_id=config.env_id,
        env_kwargs=env_kwargs(config),
        seed=args.seed,
        num_seeds=args.num_seeds,
        num_chunks=num_chunks,
        total_timesteps=total,
        run_dir=parent,
        quiet=True,
        **config.flags,
    )
    print(f"== {config.name}: {config.algo}.py, {total} env steps x {args.num_seeds} seeds")
    start = time.time()
    module.main(algo_args)
    wall = time.time() - start
    new = sorted(set(os.listdir(parent)) - before)
    if len(new) != 1:
        raise RuntimeError(f"expected one new run directory in {parent}, found {new}")
    with open(os.path.join(parent, new[0], RESULT_FILES[0]), "w") as f:
        json.dump({"config": config.name, "wall_seconds": wall}, f)


def finished_run(parent: str) -> str | None:
    """The newest run under `parent` that has a result file, or None."""
    if not os.path.isdir(parent):
        return None
    done = [
        os.path.join(parent, d)
        for d in os.listdir(parent)
        if any(os.path.exists(os.path.join(parent, d, f)) for f in RESULT_FILES)
    ]
    return max(done, key=os.path.getmtime) if done else None


def load_result(config: Config, args: Args) -> dict | None:
    run = finished_run(os.path.join(args.run_dir, config.name))
    if run is None and config.algo != "hindsight_em":
        run = finished_run(os.path.join(args.her_scaling_dir, config.name))
    if run is None:
        return None
    result_file = next(f for f in RESULT_FILES if os.path.exists(os.path.join(run, f)))
    with open(os.path.join(run, result_file)) as f:
        wall = json.load(f)["wall_seconds"]
    metrics = read_metrics(run)
    steps, success = eval_curves(metrics, "eval/success_rate")
    return {"config": config, "steps": steps, "success": success, "wall": wall, "run": run}


def first_solved(result: dict) -> str:
    hit = np.flatnonzero(result["success"].mean(axis=1) >= SOLVED)
    return f"{result['steps'][hit[0]]:,}" if hit.size else "not reached"


def table(results: list[dict]) -> str:
    lines = [
        "| env | size | algorithm | env steps per seed | final eval success (mean ± std) "
        f"| per seed | first step with mean ≥ {SOLVED} | wall time | run |",
        "| --- | ---: | --- | ---: | ---: | --- | ---: | ---: | --- |",
    ]
    for r in sorted(results, key=lambda r: (r["config"].env_id, r["config"].size)):
        c, final = r["config"], r["success"][-1]
        per_seed = ", ".join(f"{v:.2f}" for v in final)
        lines.append(
            f"| {c.env_id} | {c.size} | {LABELS[c.algo]} | {r['steps'][-1]:,} "
            f"| {final.mean():.2f} ± {final.std():.2f} | {per_seed} | {first_solved(r)} "
            f"| {r['wall'] / 60:.1f} min | `{os.path.relpath(r['run'], ROOT)}` |"
        )
    return "\n".join(lines)


def plot(results: list[dict], path: str) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, (env_id, title, xlabel) in zip(axes, PANELS, strict=True):
        for i, algo in enumerate(LABELS):
            mine = sorted(
                (r for r in results if r["config"].env_id == env_id and r["config"].algo == algo),
                key=lambda r: r["config"].size,
            )
            if not mine:
                continue
            sizes = [r["config"].size for r in mine]
            final = np.stack([r["success"][-1] for r in mine])  # (sizes, seeds)
            ax.errorbar(
                sizes,
                final.mean(axis=1),
                yerr=final.std(axis=1),
                marker="o",
                capsize=3,
                color=f"C{i}",
                label=f"{LABELS[algo]} ({final.shape[1]} seeds)",
            )
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left", fontsize="small")
    axes[0].set_ylabel("final eval success rate (mean ± std over seeds)")
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(args: Args) -> list[dict]:
    if not args.report_only:
        for config in CONFIGS:
            if args.only and config.name not in args.only:
                continue
            reuse = config.algo != "hindsight_em" and not args.rerun_her and not args.only
            if reuse and load_result(config, args) is not None:
                continue
            run_config(config, args)
    results = [r for c in CONFIGS if (r := load_result(c, args)) is not None]
    image = os.path.join(args.out_dir, "img", "hindsight_em_scaling.png")
    plot(results, image)
    body = (
        f"{table(results)}\n\n"
        f"![final eval success vs problem size]({os.path.relpath(image, args.out_dir)})"
    )
    write_between_markers(
        os.path.join(args.out_dir, "hindsight_em.md"), "hindsight_em_scaling", body
    )
    print(table(results))
    print(f"wrote {image} and {os.path.join(args.out_dir, 'hindsight_em.md')}")
    return results


if __name__ == "__main__":
    main(cli.parse(Args))
