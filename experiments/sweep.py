"""Trains (or measures) what the records of the named sections lack.

    python experiments/sweep.py --list
    python experiments/sweep.py her_scaling                 # the missing runs
    python experiments/sweep.py her_scaling --only bitflip-10 --force
    python experiments/sweep.py throughput                  # a benchmark table

A run whose record exists and was made by the same command is skipped. Then
`python experiments/report.py <name>` writes the docs.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import tyro

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from experiments.figures import FIGURES  # noqa: E402
from experiments.tables import TABLES  # noqa: E402
from harness import cli, sweep  # noqa: E402
from harness.specs import command_text  # noqa: E402

SECTIONS = {**FIGURES, **TABLES}


@dataclass(frozen=True)
class Args:
    names: tyro.conf.Positional[tuple[str, ...]] = ()
    """figures or tables to produce (see --list)"""
    only: tuple[str, ...] = ()
    """only these configs of the named figures"""
    force: bool = False
    """run again even where a record of the same command exists"""
    dry_run: bool = False
    """print the commands that would run, run nothing"""
    list: bool = False
    """list every figure and table, and whether each run has its record"""

    def __post_init__(self):
        for name in self.names:
            if name not in SECTIONS:
                raise cli.UsageError(f"unknown figure or table {name!r}; see --list")
        known = {r.config for n in self.names if n in FIGURES for r in FIGURES[n].runs}
        for config in self.only:
            if config not in known:
                raise cli.UsageError(f"no config {config!r} in {', '.join(self.names)}")
        if not self.names and not self.list:
            raise cli.UsageError("name at least one figure or table, or give --list")


def main(args: Args) -> None:
    if args.list:
        for name, figure in FIGURES.items():
            print(f"{name} ({figure.doc})")
            for run in figure.runs:
                state = "recorded" if sweep.is_current(figure, run) else "missing or stale"
                print(f"  {run.config:<32} {state}")
        for name, table in TABLES.items():
            state = "recorded" if sweep.table_is_current(table) else "missing or stale"
            print(f"{name} ({table.doc}): {state}")
        return
    for name in args.names:
        if name in TABLES:
            table = TABLES[name]
            if sweep.table_is_current(table) and not args.force:
                continue
            print(" ".join(table.command) if args.dry_run else f"wrote {sweep.measure(table)}")
            continue
        figure = FIGURES[name]
        for run in figure.runs:
            if (args.only and run.config not in args.only) or (
                sweep.is_current(figure, run) and not args.force
            ):
                continue
            if args.dry_run:
                print(command_text(figure, run))
                continue
            print(f"wrote {sweep.train(figure, run)}", flush=True)
    if not args.dry_run:
        print(f"now: python experiments/report.py {' '.join(args.names)}")


if __name__ == "__main__":
    main(cli.parse(Args))
