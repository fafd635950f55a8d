"""Helpers the experiment scripts share to turn runs into docs: per-seed curves
from a run's metrics and a generated section between marker comments."""

from __future__ import annotations

import os

import numpy as np

from common.plot import metric_curves


def eval_curves(metrics: dict, name: str = "eval/success_rate") -> tuple[np.ndarray, np.ndarray]:
    """(steps (T,), values (T, seeds)) of one metric from `read_metrics` output."""
    return metric_curves(metrics, name)


def write_between_markers(path: str, marker: str, body: str) -> None:
    """Replace the text between `<!-- marker:begin -->` and `<!-- marker:end -->` in
    `path`, or append the marked section if it is not there yet."""
    begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
    text = open(path).read() if os.path.exists(path) else ""
    if begin in text and end in text.split(begin, 1)[1]:
        head, rest = text.split(begin, 1)
        tail = rest.split(end, 1)[1]
    else:
        head, tail = text + ("\n" if text else ""), "\n"
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(f"{head}{begin}\n{body}\n{end}{tail}")
    os.replace(tmp, path)
