"""Import a training script of `algos/` as a module (the scripts are not a package),
for tests, experiments and benchmarks."""

from __future__ import annotations

import importlib.util
import os
import sys
from types import ModuleType

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_algo(name: str) -> ModuleType:
    """algos/<name>.py as the module `name`, imported once."""
    if name in sys.modules:
        return sys.modules[name]
    path = os.path.join(ROOT, "algos", f"{name}.py")
    if not os.path.exists(path):
        raise ValueError(f"no algorithm script {path}")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
