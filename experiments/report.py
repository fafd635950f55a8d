"""Writes the docs' generated sections from the records.

python experiments/report.py                 # every figure and table, and README's
python experiments/report.py her_scaling     # one
python experiments/report.py --check         # write nothing; exit 1 if a doc differs
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import tyro

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from experiments.figures import FIGURES  # noqa: E402
from experiments.tables import TABLES  # noqa: E402
from harness import cli, records, report  # noqa: E402

SECTIONS = {**FIGURES, **TABLES}
README = os.path.join(records.ROOT, "README.md")
README_MARKER = "results"


def expected(name: str) -> tuple[str, str]:
    """(doc path, generated text) of a figure or table, from its records."""
    if name == README_MARKER:
        return README, report.readme_table(list(FIGURES.values()))
    if name in FIGURES:
        figure = FIGURES[name]
        return report.doc_path(figure), report.section(figure, report.load(figure))
    table = TABLES[name]
    return os.path.join(records.ROOT, table.doc), report.table_section(
        table, report.load_table(table)
    )


@dataclass(frozen=True)
class Args:
    names: tyro.conf.Positional[tuple[str, ...]] = ()
    """figures or tables to write (default: all, and README's results table)"""
    check: bool = False
    """write nothing; list the doc sections that differ from the records and exit 1"""

    def __post_init__(self):
        for name in self.names:
            if name not in SECTIONS:
                raise cli.UsageError(f"unknown figure or table {name!r}")


def main(args: Args) -> int:
    names = args.names or (*SECTIONS, README_MARKER)
    stale = []
    for name in names:
        file, body = expected(name)
        if args.check:
            if report.current_section(file, name) != body:
                stale.append(f"{os.path.relpath(file, records.ROOT)} [{name}]")
            continue
        report.write_between_markers(file, name, body)
        if name in FIGURES and FIGURES[name].plot:
            figure, image = FIGURES[name], report.image_path(FIGURES[name])
            if found := report.load(figure):
                report.plot(figure, found, image)
            elif os.path.exists(image):
                os.remove(image)  # no record, no picture
        print(f"wrote {os.path.relpath(file, records.ROOT)} [{name}]")
    if stale:
        print("differ from their records: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(cli.parse(Args)))
