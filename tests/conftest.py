import os

# Test workers run side by side (pytest-xdist); on a GPU, none may take most of its
# memory up front.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

from harness.algos_loader import ROOT, load_algo  # noqa: E402

__all__ = ["ROOT", "load_algo"]
