"""Learning curves of runs, mean ± std over seeds, grouped by a flag, to PNG.

    python -m harness.plot runs/ --group-by relabel --metric eval/success_rate --out curves.png

Each argument is a run directory (it holds `metrics.csv` and `args.json`) or a
directory searched for runs below it. Runs whose chosen flag (or `algo`, `env_id`)
has the same value form one curve: the mean over every seed of every such run, with
a band of ± one standard deviation. Runs logged at different steps are interpolated
onto the steps of the group's first run.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass

import numpy as np
import tyro

from harness.cli import UsageError, parse
from harness.logger import ARGS_FILE, METRICS_FILE, read_metrics


@dataclass(frozen=True)
class PlotArgs:
    runs: tyro.conf.Positional[tuple[str, ...]]
    """run directories, or directories holding runs somewhere below them"""
    metric: str = "eval/success_rate"
    """the logged metric to draw (a column of metrics.csv)"""
    group_by: str = "algo"
    """the flag (a key of args.json, e.g. relabel, env_id) whose value names a curve"""
    out: str = "curves.png"
    """where to write the PNG"""
    title: str = ""
    """figure title (default: the metric)"""

    def __post_init__(self):
        if not self.runs:
            raise UsageError("give at least one run directory")
        missing = [path for path in self.runs if not os.path.isdir(path)]
        if missing:
            raise UsageError(f"no such directory: {missing[0]}")


def find_runs(paths: tuple[str, ...] | list[str]) -> list[str]:
    """Every directory at or below `paths` that holds both metrics.csv and args.json."""
    found = []
    for path in paths:
        for root, dirs, files in os.walk(path):
            dirs.sort()
            if METRICS_FILE in files and ARGS_FILE in files:
                found.append(root)
                dirs.clear()  # a run's own subdirectories (checkpoint, videos) hold no runs
    return sorted(dict.fromkeys(found))


def metric_curves(metrics: dict, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps (T,), values (T, seeds)) of one metric from `read_metrics` output."""
    steps = np.unique(metrics["step"])
    num_seeds = int(metrics["seed"].max()) + 1
    values = np.full((len(steps), num_seeds), np.nan)
    for i, step in enumerate(steps):
        rows = metrics["step"] == step
        values[i, metrics["seed"][rows].astype(int)] = metrics[name][rows]
    return steps, values


def group_curves(
    runs: list[str], metric: str, group_by: str
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{group label: (steps (T,), values (T, all seeds of all its runs))}."""
    groups: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for run in runs:
        with open(os.path.join(run, ARGS_FILE)) as f:
            flags = json.load(f)
        if group_by not in flags:
            raise UsageError(f"{run} has no flag {group_by!r} in its {ARGS_FILE}")
        metrics = read_metrics(run)
        if metric not in metrics:
            raise UsageError(f"{run} did not log {metric!r}")
        label = f"{group_by}={flags[group_by]}"
        groups.setdefault(label, []).append(metric_curves(metrics, metric))
    out = {}
    for label, curves in groups.items():
        steps = curves[0][0]
        columns = [
            np.stack([np.interp(steps, s, v[:, i]) for i in range(v.shape[1])], axis=1)
            for s, v in curves
        ]
        out[label] = (steps, np.concatenate(columns, axis=1))
    return out


def draw(groups: dict[str, tuple[np.ndarray, np.ndarray]], metric: str, out: str, title: str):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4), dpi=120)
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    for label, (steps, values) in groups.items():
        mean, std = np.nanmean(values, axis=1), np.nanstd(values, axis=1)
        ax.plot(steps, mean, label=f"{label} ({values.shape[1]} seeds)")
        ax.fill_between(steps, mean - std, mean + std, alpha=0.2)
    ax.set_xlabel("env steps per seed")
    ax.set_ylabel(metric)
    ax.set_title(title or metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    figure.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = f"{out}.tmp.png"
    figure.savefig(tmp)
    os.replace(tmp, out)


def main(argv: list[str] | None = None) -> str:
    args = parse(PlotArgs, argv)
    try:
        runs = find_runs(args.runs)
        if not runs:
            raise UsageError(f"no runs (directories with {METRICS_FILE}) under {args.runs}")
        groups = group_curves(runs, args.metric, args.group_by)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    draw(groups, args.metric, args.out, args.title)
    print(f"{len(runs)} run(s) in {len(groups)} group(s): {args.out}")
    return args.out


if __name__ == "__main__":
    main()
