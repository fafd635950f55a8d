"""Run logging shared by every training script: TensorBoard, CSV and a progress bar.

A run lives in `runs/<run_name>/` and holds:

- `args.json`: the script's `Args`, also shown in TensorBoard as a "hyperparameters" table;
- TensorBoard event files: the mean over seeds of each metric, under its namespaced name
  (`charts/`, `losses/`, `relabel/`, `eval/`);
- `metrics.csv`: one row per (step, seed), so per-seed curves and spreads can be plotted.

Metrics may appear later in a run (e.g. `eval/` every few chunks): the CSV header then grows
and earlier rows get empty cells, which `read_metrics` returns as NaN.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import time
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from tensorboardX import SummaryWriter
from tqdm import tqdm

METRICS_FILE = "metrics.csv"
ARGS_FILE = "args.json"
INDEX_COLUMNS = ("step", "seed")


def run_name(env_id: str, algo: str, seed: int) -> str:
    return f"{env_id}__{algo}__{seed}__{int(time.time())}"


def _json_default(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    if isinstance(value, set | frozenset):
        return sorted(value)
    return str(value)  # paths, enums, types: readable rather than refused


def args_dict(args: Any) -> dict[str, Any]:
    """`args` (a dataclass or a mapping) as a JSON-safe dict."""
    raw = dataclasses.asdict(args) if dataclasses.is_dataclass(args) else dict(args)
    return json.loads(json.dumps(raw, default=_json_default))


class RunLogger:
    """Writes one run's metrics; use as `with RunLogger(...) as logger:`."""

    def __init__(
        self,
        run_dir: str,
        args: Any,
        total_steps: int,
        num_seeds: int,
        quiet: bool = False,
        *,
        initial_step: int = 0,
    ) -> None:
        self.run_dir = run_dir
        self.num_seeds = num_seeds
        os.makedirs(run_dir, exist_ok=True)

        # args.json + TensorBoard hyperparameter table (CleanRL)
        hparams = args_dict(args)
        with open(os.path.join(run_dir, ARGS_FILE), "w") as f:
            json.dump(hparams, f, indent=2)
        # on resume, TensorBoard hides and the CSV drops what was logged after the checkpoint
        self.writer = SummaryWriter(run_dir, purge_step=initial_step + 1 if initial_step else None)
        table = "\n".join(f"|{k}|{v}|" for k, v in hparams.items())
        self.writer.add_text("hyperparameters", f"|param|value|\n|-|-|\n{table}")

        self.csv_path = os.path.join(run_dir, METRICS_FILE)
        self.columns: list[str] = list(INDEX_COLUMNS)
        if os.path.exists(self.csv_path):
            with open(self.csv_path, newline="") as f:
                self.columns = next(csv.reader(f), self.columns)
            if initial_step:
                self._rewrite_csv(max_step=initial_step)
        self.csv_file = open(self.csv_path, "a", newline="")
        if self.csv_file.tell() == 0:
            self._write_row(self.columns)

        # progress bar over env steps; SPS counts from construction (compilation included)
        self.bar = tqdm(
            total=total_steps,
            initial=initial_step,
            unit="step",
            unit_scale=True,
            dynamic_ncols=True,
            disable=quiet,
        )
        self._start_step = initial_step
        self._start_time = time.time()

    def log(self, step: int, metrics: Mapping[str, np.ndarray | float]) -> None:
        """Scalars or per-seed `(num_seeds,)` arrays; TensorBoard gets the mean over seeds."""
        values = {}
        for name, value in jax.device_get(dict(metrics)).items():
            array = np.asarray(value)
            if array.dtype == bool:
                array = array.astype(np.int32)
            if array.shape not in ((), (self.num_seeds,)):
                raise ValueError(
                    f"metric {name!r} has shape {array.shape}; expected a scalar or one "
                    f"value per seed, shape ({self.num_seeds},)"
                )
            values[name] = np.broadcast_to(array, (self.num_seeds,))
            self.writer.add_scalar(name, float(np.mean(array)), step)
        self.writer.flush()

        new = [name for name in values if name not in self.columns]
        if new:  # older rows get empty cells in the new columns
            self.csv_file.close()
            self.columns += new
            self._rewrite_csv()
            self.csv_file = open(self.csv_path, "a", newline="")
        for seed in range(self.num_seeds):
            row = [step, seed] + [
                values[c][seed] if c in values else "" for c in self.columns[len(INDEX_COLUMNS) :]
            ]
            self._write_row(row)
        self.csv_file.flush()

    def progress(self, step: int, **postfix: Any) -> float:
        """Advance the bar to env step `step`; shows SPS and `postfix`. Returns SPS."""
        sps = (step - self._start_step) / max(time.time() - self._start_time, 1e-9)
        shown = {"SPS": f"{sps:.0f}"}
        for key, value in jax.device_get(postfix).items():
            shown[key] = value if isinstance(value, str) else f"{float(np.mean(value)):.3g}"
        self.bar.set_postfix(shown, refresh=False)
        self.bar.update(step - self.bar.n)
        return sps

    def summary(self, text: str) -> None:
        """The run's last line, printed under the finished progress bar."""
        self.bar.close()
        tqdm.write(text)

    def close(self) -> None:
        self.bar.close()
        self.writer.close()
        self.csv_file.close()

    def __enter__(self) -> RunLogger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- CSV helpers
    def _write_row(self, row: list[Any]) -> None:
        csv.writer(self.csv_file).writerow(row)

    def _rewrite_csv(self, max_step: int | None = None) -> None:
        """Rewrite the (small) CSV with the current columns, dropping rows past `max_step`."""
        with open(self.csv_path, newline="") as f:
            rows = list(csv.reader(f))[1:]
        if max_step is not None:
            rows = [row for row in rows if int(row[0]) <= max_step]
        tmp_path = self.csv_path + ".tmp"
        with open(tmp_path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(self.columns)
            writer.writerows(row + [""] * (len(self.columns) - len(row)) for row in rows)
        os.replace(tmp_path, self.csv_path)  # a kill mid-rewrite keeps the old file


def read_metrics(run_dir: str) -> dict[str, np.ndarray]:
    """metrics.csv as columns: `step` and `seed` as int64, metrics as float64 (NaN if empty)."""
    with open(os.path.join(run_dir, METRICS_FILE), newline="") as f:
        header, *rows = list(csv.reader(f))
    columns = {}
    for i, name in enumerate(header):
        cells = [row[i] if i < len(row) else "" for row in rows]
        if name in INDEX_COLUMNS:
            columns[name] = np.array([int(c) for c in cells], dtype=np.int64)
        else:
            columns[name] = np.array([float(c) if c else np.nan for c in cells], dtype=np.float64)
    return columns
