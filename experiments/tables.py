"""Every reported measurement of benchmarks/, as data: the command that measures it, and
which columns of its rows a doc shows. `python experiments/sweep.py <table>` measures,
`python experiments/report.py <table>` writes the section between the `<table>` markers."""

from __future__ import annotations

from harness.specs import Column, Table

TABLES: dict[str, Table] = {t.name: t for t in ()}
__all__ = ["TABLES", "Column", "Table"]
