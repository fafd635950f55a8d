"""Optional Weights & Biases logging (`--track`), safe without network or credentials.

W&B runs offline (files under `runs/<run_name>/wandb/`, uploadable later with
`wandb sync`) unless `WANDB_MODE` says otherwise or credentials exist (`WANDB_API_KEY`
or a `wandb login` entry in ~/.netrc). Start-up waits at most `INIT_TIMEOUT` seconds;
any W&B failure prints one warning and training goes on without it.
"""

from __future__ import annotations

import importlib.util
import netrc
import os
import re
import sys
from typing import Any

import numpy as np

INIT_TIMEOUT = 30.0


def available() -> bool:
    return importlib.util.find_spec("wandb") is not None


def _has_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        hosts = netrc.netrc().hosts
    except (OSError, netrc.NetrcParseError):
        return False
    return any("wandb" in host for host in hosts)


class _Off:
    def log(self, step: int, metrics: dict[str, Any]) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass


class _WandB(_Off):
    def __init__(self, wandb: Any, run: Any) -> None:
        self.wandb, self.run = wandb, run

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        try:
            self.run.log({k: float(np.mean(v)) for k, v in metrics.items()}, step=step)
        except Exception as err:  # a tracking hiccup must never stop training
            _warn(f"W&B logging failed ({err}); training goes on")

    def __exit__(self, *exc_info: object) -> None:
        try:
            self.run.finish(exit_code=1 if exc_info[0] else 0)
        except Exception as err:
            _warn(f"W&B did not finish cleanly ({err})")


def _warn(text: str) -> None:
    print(f"warning: {text}", file=sys.stderr)


def start(args: Any, run_dir: str, hparams: dict[str, Any]) -> _Off:
    """A tracker for the run in `run_dir`: W&B if `args.track`, else one that does nothing.
    Use as a context manager; `tracker.log(step, metrics)` logs the mean over seeds."""
    if not args.track:
        return _Off()
    import wandb

    mode = os.environ.get("WANDB_MODE") or ("online" if _has_credentials() else "offline")
    os.makedirs(run_dir, exist_ok=True)
    name = os.path.basename(os.path.normpath(run_dir))
    try:
        run = wandb.init(
            project=args.wandb_project,
            name=name,
            id=re.sub(r"[^A-Za-z0-9_-]", "-", name)[:64],  # stable, so --resume continues it
            resume="allow",
            config=hparams,
            dir=run_dir,
            mode=mode,
            settings=wandb.Settings(init_timeout=INIT_TIMEOUT, console="off"),
        )
    except Exception as err:
        _warn(f"W&B tracking is off for this run ({type(err).__name__}: {err})")
        return _Off()
    if mode == "offline":
        print(f"W&B offline: upload later with `wandb sync {run_dir}/wandb/offline-run-*`")
    return _WandB(wandb, run)
