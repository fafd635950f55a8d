"""The shape of an experiment spec: a figure is data (which script, which flags, which
seeds, which budget, which metric); `harness.sweep` trains what its records lack and
`harness.report` turns its records into a docs table and a PNG."""

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
