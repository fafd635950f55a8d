"""The sweep runner: trains every run of the named figures whose record is missing or
was made by another command, and writes its record.

    python -m harness.sweep her_scaling               # what is missing
    python -m harness.sweep her_scaling --only bitflip-10 --force
    python -m harness.sweep --list

Each run is its script's own command line in a subprocess (the record holds exactly
that command), logging into runs/sweep/<figure>/<config>/; the record keeps the metrics
of every (step, seed) that the figure's table and plot use, and every `eval/` metric.
Then `python -m harness.report <figure>` writes the docs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass

import tyro

from common import cli
from common.logger import read_metrics
from experiments.figures import FIGURES
from harness import records
from harness.specs import Figure, Run, command, command_text

RUNS = os.path.join(records.ROOT, "runs", "sweep")


@dataclass(frozen=True)
class Args:
    figures: tyro.conf.Positional[tuple[str, ...]] = ()
    """figures to train (see --list)"""
    only: tuple[str, ...] = ()
    """train only these configs of the figures"""
    force: bool = False
    """retrain even where a record of the same command exists"""
    dry_run: bool = False
    """print what would be trained, train nothing"""
    list: bool = False
    """list the figures, their configs and whether each has its record"""

    def __post_init__(self):
        for name in self.figures:
            if name not in FIGURES:
                raise cli.UsageError(f"unknown figure {name!r}; known: {', '.join(FIGURES)}")
        known = {r.config for f in self.figures for r in FIGURES[f].runs}
        for config in self.only:
            if config not in known:
                raise cli.UsageError(f"no config {config!r} in {', '.join(self.figures)}")
        if not self.figures and not self.list:
            raise cli.UsageError("name at least one figure, or give --list")


def recorded_command(figure: Figure, run: Run) -> str | None:
    file = records.path(figure.name, run.config)
    if not os.path.exists(file):
        return None
    try:
        return records.read(file).header.get("command")
    except ValueError:
        return None


def is_current(figure: Figure, run: Run) -> bool:
    return recorded_command(figure, run) == command_text(figure, run)


def train(figure: Figure, run: Run) -> str:
    """Runs one config's command and writes its record; returns the record's path."""
    parent = os.path.join(RUNS, figure.name, run.config)
    shutil.rmtree(parent, ignore_errors=True)
    os.makedirs(parent)
    argv = command(figure, run)
    print(f"== {figure.name}/{run.config}: {command_text(figure, run)}", flush=True)
    start, date = time.time(), records.now()
    subprocess.run([sys.executable, *argv[1:], "--run-dir", parent], cwd=records.ROOT, check=True)
    wall = time.time() - start
    (run_dir,) = os.listdir(parent)
    metrics = read_metrics(os.path.join(parent, run_dir))
    names = tuple(
        dict.fromkeys(
            [figure.metric, *figure.extra, *(m for m in metrics if m.startswith("eval/"))]
        )
    )
    header = {
        "figure": figure.name,
        "config": run.config,
        "command": command_text(figure, run),
        **records.commit(),
        "date": date,
        "machine": records.machine(),
        "wall_seconds": round(wall, 1),
        "first_seed": figure.seed,
        "num_seeds": figure.num_seeds,
    }
    file = records.path(figure.name, run.config)
    records.write(file, header, records.rows_from_metrics(metrics, names))
    return file


def main(args: Args) -> None:
    if args.list:
        for name, figure in FIGURES.items():
            print(f"{name} ({figure.doc})")
            for run in figure.runs:
                state = (
                    "recorded"
                    if is_current(figure, run)
                    else "stale"
                    if recorded_command(figure, run)
                    else "missing"
                )
                print(f"  {run.config:<32} {state}")
        return
    for name in args.figures:
        figure = FIGURES[name]
        for run in figure.runs:
            if args.only and run.config not in args.only:
                continue
            if is_current(figure, run) and not args.force:
                continue
            if args.dry_run:
                print(command_text(figure, run))
                continue
            print(f"wrote {train(figure, run)}", flush=True)
    if not args.dry_run:
        print(f"now: python -m harness.report {' '.join(args.figures)}")


if __name__ == "__main__":
    main(cli.parse(Args))
