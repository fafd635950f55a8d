"""The sweep runner's chores: run a spec's command in a subprocess and write its record.

A figure's run logs into runs/sweep/<figure>/<config>/ and its record keeps, for every
(step, seed), the metrics the figure's table and plot use and every `eval/` metric. A
table's command writes its measurements to the file named by `--rows-out`, and the
record keeps them as they are. The command-line front end is `experiments/sweep.py`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time

from harness import records
from harness.logger import read_metrics
from harness.specs import Figure, Run, Table, command, command_text

RUNS = os.path.join(records.ROOT, "runs", "sweep")


def recorded_command(file: str) -> str | None:
    if not os.path.exists(file):
        return None
    try:
        return records.read(file).header.get("command")
    except ValueError:
        return None


def is_current(figure: Figure, run: Run) -> bool:
    """A record of `run` exists and was made by the command the spec gives today."""
    return recorded_command(records.path(figure.name, run.config)) == command_text(figure, run)


def table_is_current(table: Table) -> bool:
    file = records.path("benchmarks", table.record_name)
    return recorded_command(file) == " ".join(table.command)


# what a training script can load: itself and the libraries below it
LOADED = ("envs", "common", "harness")


def _code(loads: tuple[str, ...]) -> dict:
    """The commit, the uncommitted code files and the digest of the code at `loads`, read
    when a command starts: the code its process loads."""
    return {**records.commit(), "code_digest": records.code_digest(loads)}


def _header(command_line: str, start: float, date: str, machine: dict, code: dict) -> dict:
    """`code` as `_code()` read it when the command started, with the paths it digested
    (`loads`). If code the run could load changed while it ran, the header says so."""
    same = records.code_digest(code.pop("loads")) == code["code_digest"]
    changed = {} if same else {"code_changed_during_run": True}
    return {
        "command": command_line,
        **code,
        **changed,
        "date": date,
        "machine": machine,
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "wall_seconds": round(time.time() - start, 1),
    }


def train(figure: Figure, run: Run) -> str:
    """Runs one config's command and writes its record; returns the record's path."""
    parent = os.path.join(RUNS, figure.name, run.config)
    shutil.rmtree(parent, ignore_errors=True)
    os.makedirs(parent)
    argv = command(figure, run)
    print(f"== {figure.name}/{run.config}: {command_text(figure, run)}", flush=True)
    for file, make in run.data:
        if not os.path.exists(os.path.join(records.ROOT, file)):
            print(f"== {file}: {' '.join(make)}", flush=True)
            subprocess.run([sys.executable, *make[1:]], cwd=records.ROOT, check=True)
    loads = (f"algos/{run.script}.py", *LOADED)
    start, date, machine = time.time(), records.now(), records.machine()
    code = {**_code(loads), "loads": loads}
    subprocess.run([sys.executable, *argv[1:], "--run-dir", parent], cwd=records.ROOT, check=True)
    header = _header(command_text(figure, run), start, date, machine, code)
    if run.data:
        header["data"] = {file: " ".join(make) for file, make in run.data}
    (run_dir,) = os.listdir(parent)
    metrics = read_metrics(os.path.join(parent, run_dir))
    names = [figure.metric, *figure.extra, *(m for m in metrics if m.startswith("eval/"))]
    header |= {"figure": figure.name, "config": run.config, "first_seed": figure.seed,
               "num_seeds": figure.num_seeds}  # fmt: skip
    file = records.path(figure.name, run.config)
    records.write(file, header, records.rows_from_metrics(metrics, tuple(dict.fromkeys(names))))
    return file


def measure(table: Table) -> str:
    """Runs a table's command and records the rows it wrote; returns the record's path."""
    print(f"== benchmarks/{table.record_name}: {' '.join(table.command)}", flush=True)
    start, date, machine = time.time(), records.now(), records.machine()
    code = {**_code(records.CODE_DIRS), "loads": records.CODE_DIRS}  # benchmarks load any
    with tempfile.TemporaryDirectory() as tmp:
        rows_file = os.path.join(tmp, "rows.jsonl")
        argv = [sys.executable, *table.command[1:], "--rows-out", rows_file]
        subprocess.run(argv, cwd=records.ROOT, check=True)
        header = _header(" ".join(table.command), start, date, machine, code)
        rows = records.read_rows(rows_file)
    file = records.path("benchmarks", table.record_name)
    records.write(file, header | {"table": table.record_name}, rows)
    return file
