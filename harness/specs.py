"""The shape of an experiment spec: a figure is data (which script, which flags, which
seeds, which budget, which metric); `experiments/sweep.py` trains what its records lack and
`experiments/report.py` turns its records into a docs table and a PNG."""

from __future__ import annotations

import shlex
from dataclasses import dataclass


@dataclass(frozen=True)
class Run:
    config: str
    """record name: results/<figure>/<config>.jsonl"""
    script: str
    """training script, algos/<script>.py"""
    flags: tuple[str, ...]
    """command-line flags of the script, budget included"""
    label: str
    """row and legend label"""
    panel: str = ""
    """plot panel (runs with the same panel share axes)"""
    baseline: bool = False
    """a baseline (no relabeling, ...): dashed in the plot"""
    threshold: float | None = None
    """for a learning test: the per-seed value every tested seed must reach"""
    data: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """(file, command) pairs: each command writes its file (a dataset) if it is missing,
    before the run's own command"""


@dataclass(frozen=True)
class Figure:
    name: str
    """results/<name>/, docs marker <name>, docs/img/<name>.png"""
    doc: str
    """docs page (relative to the project root) holding the markers"""
    runs: tuple[Run, ...]
    metric: str = "eval/success_rate"
    """the metric of the table's main column and of the plot"""
    metric_label: str = "eval success"
    extra: tuple[str, ...] = ()
    """further metrics whose final mean gets a column"""
    solved: float | None = None
    """adds the column "first step where the mean over seeds ≥ solved" """
    num_seeds: int = 5
    seed: int = 1
    plot: bool = True
    summary: str = ""
    """what the figure shows, in a few words: its row in README's results table"""

    def run(self, config: str) -> Run:
        return next(r for r in self.runs if r.config == config)


@dataclass(frozen=True)
class Column:
    header: str
    key: str
    """the row's field"""
    format: str = ",.0f"
    """format spec of the value (a string value is shown as it is)"""


@dataclass(frozen=True)
class Table:
    """A measurement table (benchmarks/): one command writes rows of measurements, each a
    JSON object, to the file named by `--rows-out`; the runner records them with the
    header; the report writer shows the chosen columns of the chosen rows."""

    name: str
    """docs marker <name>; record results/benchmarks/<record or name>.jsonl"""
    doc: str
    command: tuple[str, ...] = ()
    """the measuring command, e.g. ("python", "benchmarks/envs.py", ...)"""
    columns: tuple[Column, ...] = ()
    where: tuple[tuple[str, object], ...] = ()
    """show only rows whose fields equal these values"""
    record: str = ""
    """read another table's record (several tables from one command)"""
    text: str = ""
    """what is measured, in words (no measured numbers), shown above the table"""

    @property
    def record_name(self) -> str:
        return self.record or self.name


def command(figure: Figure, run: Run) -> list[str]:
    """The exact command that trains `run` (without --run-dir, which the runner adds)."""
    return [
        "python",
        f"algos/{run.script}.py",
        *run.flags,
        "--seed",
        str(figure.seed),
        "--num-seeds",
        str(figure.num_seeds),
        "--quiet",
    ]


def command_text(figure: Figure, run: Run) -> str:
    return shlex.join(command(figure, run))
