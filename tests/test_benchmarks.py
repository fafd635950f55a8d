"""Every benchmark runs with its tiniest settings and appends, to the file named by
`--rows-out`, rows that hold the columns its tables in experiments/tables.py show; and
every table's command is one its benchmark accepts."""

import importlib
import json
import os
import subprocess
import sys

import pytest
import tyro
from conftest import ROOT

from experiments.tables import TABLES
from harness import cli, records, report

TINY = {
    "throughput": ["--quick", "--envs", "bitflip"],
    "scaling": ["--setups", "sac/pointnav", "--num-envs", "4", "--seeds", "1",
                "--seed-num-envs", "4", "--split-setups", "sac/pointnav", "--split-num-envs",
                "4", "--devices", "1", "--device-num-envs", "4", "--iterations", "2",
                "--repeats", "1"],
    "vs_brax_sac": ["--env-id", "pointnav", "--num-envs", "4", "--repeats", "1",
                    "--iterations", "2", "--batch-size", "8"],
    # pointnav, not an MJX env: the same code, compiled in seconds
    "envs": ["--envs", "pointnav", "--num-envs", "2", "--scan-steps", "2", "--seconds", "0.01",
             "--sanity-envs", "2", "--sanity-episodes", "1"],
    "relabel_cost": ["--envs", "pointnav", "--batch-sizes", "8", "--strategies", "none",
                     "inverse_rl", "--iterations", "2", "--repeats", "1"],
    # stable-baselines3 and torch come with the `peers` extra only (skipped without them)
    "vs_sb3": ["--n-bits", "4", "--seeds", "1", "--budget", "200", "--eval-every", "100",
               "--eval-episodes", "2"],
    # flashbax is not a dependency: its rows have the same fields as ours
    "buffer": ["--no-flashbax", "--num-envs", "4", "--capacity", "400", "--episode-length", "5",
               "--repeats", "2", "--scan-length", "2"],
}  # fmt: skip


def tables_of(script: str) -> list:
    return [t for t in TABLES.values() if t.command[1] == f"benchmarks/{script}.py"]


def test_every_table_is_measured_by_a_benchmark_with_a_smoke_test():
    assert {t.command[1] for t in TABLES.values()} == {f"benchmarks/{s}.py" for s in TINY}


@pytest.mark.parametrize("script", list(TINY))
def test_benchmark_rows_hold_the_columns_of_its_tables(script, tmp_path):
    if script == "vs_sb3":
        pytest.importorskip("stable_baselines3", reason="the peers extra is not installed")
    out = tmp_path / "rows.jsonl"
    argv = [sys.executable, f"benchmarks/{script}.py", *TINY[script], "--rows-out", str(out)]
    # Smoke runs: XLA's cheapest optimisation compiles about twice as fast, and the
    # compilation cache compiles once the programs a run builds several times.
    env = dict(os.environ, XLA_FLAGS="--xla_backend_optimization_level=0",
               JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jax_cache"))  # fmt: skip
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    machine = {"cpu": "cpu", "cores": 2, "arch": "x86_64", "jax": "0", "devices": "1 x cpu",
               "xla_flags": "", "load_average": [0.0, 0.0, 0.0]}  # fmt: skip
    header = {"command": "c", "commit": "0" * 40, "uncommitted": [], "wall_seconds": 1.0,
              "date": "2026-01-01T00:00:00+00:00", "machine": machine}  # fmt: skip
    for table in tables_of(script):
        shown = [r for r in rows if all(r.get(k) == v for k, v in table.where)]
        assert shown, f"{script} wrote no row of {table.name}"
        for row in shown:
            missing = {c.key for c in table.columns} - set(row)
            assert not missing, f"{table.name}: a row lacks {missing}: {row}"
        # every value takes its column's format
        section = report.table_section(table, records.Record(header, rows))
        lines = [line for line in section.splitlines() if line.startswith("| ")]
        assert len(lines) == len(shown) + 2, section


@pytest.mark.parametrize("name", list(TABLES))
def test_every_table_command_is_accepted_by_its_benchmark(name):
    command = TABLES[name].command
    assert command[0] == "python" and command[1].startswith("benchmarks/")
    module = importlib.import_module(command[1].removesuffix(".py").replace("/", "."))
    flags = list(command[2:])
    if getattr(module, "fbx", True) is None:  # buffer.py without flashbax installed
        flags.append("--no-flashbax")
    try:
        tyro.cli(module.Args, args=flags)
    except cli.UsageError as error:
        pytest.fail(f"{' '.join(command)}: {error}")


def test_vs_sb3_without_the_peers_extra_says_how_to_get_them():
    """Run as if stable-baselines3 were not installed (whether it is or not)."""
    code = (
        "import sys, runpy; sys.modules['stable_baselines3'] = None; "
        "sys.argv = ['benchmarks/vs_sb3.py']; runpy.run_path('benchmarks/vs_sb3.py', "
        "run_name='__main__')"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and 'pip install -e ".[peers]"' in done.stderr
