"""Results records: the committed text files behind every reported number.

One record per trained configuration, `results/<figure>/<config>.jsonl`:

- line 1, the header: the exact command, the commit (and whether code files differed
  from it), the date, the machine (read from the machine: CPU model, cores, JAX version,
  devices), the wall time of the whole command, and the seeds;
- every further line, one (step, seed) row: `{"step": ..., "seed": ..., metric: value}`.

Records are written atomically (a temporary file, then `os.replace`), so an interrupted
sweep leaves either the old record or the new one, never half of one.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import subprocess
from dataclasses import dataclass

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "results")
FORMAT = 1
CODE_DIRS = ("algos", "envs", "common", "harness", "experiments", "benchmarks")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "Model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    """What this machine is, read from the machine itself."""
    import jax

    devices = jax.devices()
    return {
        "cpu": cpu_model(),
        "arch": platform.machine(),
        "cores": os.cpu_count(),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "devices": f"{len(devices)} x {devices[0].device_kind}",
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def _git(*args: str) -> str:
    out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    return out.stdout if out.returncode == 0 else ""


def commit() -> dict:
    """HEAD, and the code files that differ from it (a record of uncommitted code says so)."""
    return {
        "commit": _git("rev-parse", "HEAD").strip() or "unknown",
        "uncommitted": changed_files(_git("status", "--porcelain", "--", *CODE_DIRS)),
    }


def code_digest(paths: tuple[str, ...] = CODE_DIRS) -> str:
    """sha256 of the Python files at `paths` (files or folders under the project root),
    names and contents: equal at the start and the end of a run when none of the code it
    could load changed meanwhile."""
    digest = hashlib.sha256()
    for top in paths:
        found = [os.path.join(ROOT, top)] if top.endswith(".py") else []
        for parent, _, files in sorted(os.walk(os.path.join(ROOT, top))):
            found += [os.path.join(parent, f) for f in sorted(files) if f.endswith(".py")]
        for path in found:
            digest.update(os.path.relpath(path, ROOT).encode())
            with open(path, "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()


def changed_files(porcelain: str) -> list[str]:
    """The paths of `git status --porcelain` output ("XY path" per line; X may be a space)."""
    return sorted(line[3:] for line in porcelain.splitlines() if line.strip())


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Record:
    header: dict
    rows: list[dict]

    @property
    def seeds(self) -> list[int]:
        return sorted({int(r["seed"]) for r in self.rows})

    @property
    def steps(self) -> np.ndarray:
        return np.array(sorted({int(r["step"]) for r in self.rows}))

    def curve(self, metric: str) -> np.ndarray:
        """(T, seeds) values of `metric` at each step (NaN where a row lacks it)."""
        steps, seeds = list(self.steps), self.seeds
        out = np.full((len(steps), len(seeds)), np.nan)
        for r in self.rows:
            value = r.get(metric)
            if value is not None:
                out[steps.index(int(r["step"])), seeds.index(int(r["seed"]))] = value
        return out

    def final(self, metric: str) -> np.ndarray:
        """(seeds,) values of `metric` at the last step that has it."""
        curve = self.curve(metric)
        has = np.flatnonzero(~np.isnan(curve).all(axis=1))
        return curve[has[-1]] if has.size else np.full(len(self.seeds), np.nan)


def path(figure: str, config: str) -> str:
    return os.path.join(RESULTS, figure, f"{config}.jsonl")


def write(file: str, header: dict, rows: list[dict]) -> None:
    os.makedirs(os.path.dirname(file), exist_ok=True)
    tmp = f"{file}.tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps({"format": FORMAT, **header}) + "\n")
        for row in rows:
            f.write(json.dumps(row) + "\n")
    os.replace(tmp, file)


def read(file: str) -> Record:
    """A record, or ValueError saying what is wrong with the file."""
    try:
        with open(file) as f:
            lines = [json.loads(line) for line in f if line.strip()]
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{file} is not a readable record: {error}") from None
    if not lines or lines[0].get("format") != FORMAT:
        raise ValueError(f"{file} has no record header of format {FORMAT}")
    return Record(lines[0], lines[1:])


def read_curves(file: str) -> Record:
    """A record of training curves: every row has its step and seed."""
    record = read(file)
    if any("step" not in r or "seed" not in r for r in record.rows):
        raise ValueError(f"{file} has a row without step or seed")
    return record


def read_rows(file: str) -> list[dict]:
    """The JSON-lines rows a measuring command wrote."""
    with open(file) as f:
        return [json.loads(line) for line in f if line.strip()]


def append_row(file: str | None, row: dict) -> None:
    """For a measuring command: add one row to its --rows-out file (nothing without one)."""
    if file:
        with open(file, "a") as f:
            f.write(json.dumps(row) + "\n")


def rows_from_metrics(metrics: dict[str, np.ndarray], names: tuple[str, ...]) -> list[dict]:
    """(step, seed) rows of the chosen metrics from `harness.logger.read_metrics` columns;
    rows where none of them was logged are left out."""
    rows = []
    for i in range(len(metrics["step"])):
        row = {"step": int(metrics["step"][i]), "seed": int(metrics["seed"][i])}
        for name in names:
            if name in metrics and not np.isnan(metrics[name][i]):
                row[name] = round(float(metrics[name][i]), 6)
        if len(row) > 2:
            rows.append(row)
    return rows
