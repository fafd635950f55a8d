"""The layers of docs/architecture.md, checked on every import statement of the tree.

Each folder may import only the folders below it:

    algos/, experiments/, benchmarks/   the programs
    harness/                            host-side chores (run dirs, logs, checkpoints, CLI)
    common/                             what runs inside jit (buffer, rollouts, devices)
    envs/                               the environments, which know nothing of learning

and nothing in harness/ calls back into a script: `harness.algos_loader` loads a
script by its path, for tools that read a saved run, never from inside a run.
"""

from __future__ import annotations

import ast
import os

import pytest
from conftest import ROOT

LAYERS = {"envs": 0, "common": 1, "harness": 2, "algos": 3, "experiments": 3, "benchmarks": 3}
PROJECT = set(LAYERS)


def imported_folders(path: str) -> set[tuple[str, int]]:
    """(top-level project folder, line) of every import in the file at `path`."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top in PROJECT:
                found.add((top, node.lineno))
    return found


def python_files(folder: str) -> list[str]:
    out = []
    for parent, _, files in os.walk(os.path.join(ROOT, folder)):
        out += [os.path.join(parent, f) for f in files if f.endswith(".py")]
    return sorted(out)


@pytest.mark.parametrize("folder", ["envs", "common", "harness"])
def test_a_layer_imports_only_the_layers_below_it(folder):
    wrong = []
    for path in python_files(folder):
        for top, line in imported_folders(path):
            if LAYERS[top] > LAYERS[folder]:
                wrong.append(f"{os.path.relpath(path, ROOT)}:{line} imports {top}")
    assert not wrong, wrong


def test_the_check_sees_a_wrong_import(tmp_path):
    """The test above can fail: a file of common/ that imports harness is caught."""
    path = tmp_path / "bad.py"
    path.write_text("import jax\nfrom harness import training\n\ndef f():\n    import algos\n")
    assert imported_folders(str(path)) == {("harness", 2), ("algos", 5)}


def test_no_algorithm_file_imports_another():
    """One self-contained file per algorithm: a script may share only common/, harness/
    and envs/ with the others."""
    for path in python_files("algos"):
        tops = {top for top, _ in imported_folders(path)}
        assert "algos" not in tops, path
