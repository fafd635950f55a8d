"""Command-line handling shared by the scripts: tyro parsing, `--env-kwargs`
values, and user errors reported as one sentence with exit code 2."""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import sys
from typing import TypeVar

import tyro

T = TypeVar("T")


class UsageError(Exception):
    """A user error in the command line: reported as one sentence, exit code 2."""


def parse_env_kwargs(pairs: tuple[str, ...]) -> dict:
    """("n_bits=25", "margin=0.003") -> {"n_bits": 25, "margin": 0.003}."""
    kwargs = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.isidentifier():
            raise UsageError(f"--env-kwargs takes name=value pairs, got {pair!r}")
        try:
            kwargs[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            kwargs[name] = value
    return kwargs


# The flags that say how this process joins a multi-process run: never taken from a saved run,
# so `--resume DIR` alone continues in one process, whatever number of processes wrote DIR.
JOIN_FLAGS = ("num_processes", "process_id", "coordinator_address")


def _flag(argv: list[str], name: str) -> str | None:
    """The value of `--name VALUE` or `--name=VALUE` in argv, read before tyro parses it."""
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def _join_processes(argv: list[str]) -> None:
    """With `--num-processes N > 1`, join the other processes through jax.distributed.
    It has to happen before anything touches a device, so before Args are built."""
    num = _flag(argv, "--num-processes")
    if num is None or num == "1":
        return
    address, index = _flag(argv, "--coordinator-address"), _flag(argv, "--process-id")
    if address is None or index is None:
        raise UsageError("--num-processes > 1 needs --coordinator-address and --process-id")
    try:
        num_processes, process_id = int(num), int(index)
    except ValueError:
        raise UsageError("--num-processes and --process-id take integers") from None
    if not 0 <= process_id < num_processes:
        raise UsageError(f"--process-id {process_id} is not in 0 .. {num_processes - 1}")
    from common import parallel

    parallel.initialize(address, num_processes, process_id)


def _as_field_type(value, default):
    """JSON lists back to the tuples the Args fields hold."""
    if isinstance(default, tuple) and isinstance(value, list):
        return tuple(_as_field_type(v, default[0] if default else None) for v in value)
    return value


def saved_flags(args_type: type, saved: dict, source: str) -> dict:
    """Flags saved as JSON, as keyword arguments of `args_type` (lists back to tuples);
    a flag the type lacks is a UsageError that starts with `source`."""
    fields = {f.name: f.default for f in dataclasses.fields(args_type)}
    unknown = sorted(set(saved) - set(fields))
    if unknown:
        raise UsageError(
            f"{source} has flags this script lacks ({', '.join(unknown)}); "
            "it was written by another script or version"
        )
    return {name: _as_field_type(value, fields[name]) for name, value in saved.items()}


def resume_defaults(args_type: type[T], run_dir: str) -> T:
    """The Args a run was started with (its args.json), so `--resume DIR` needs no other flag."""
    path = os.path.join(run_dir, "args.json")
    if not os.path.isdir(run_dir):
        raise UsageError(f"--resume {run_dir}: no such run directory")
    try:
        with open(path) as f:
            saved = json.load(f)
    except FileNotFoundError:
        raise UsageError(f"--resume {run_dir}: it has no args.json, so it is not a run") from None
    except (OSError, ValueError) as err:
        raise UsageError(f"--resume {run_dir}: its args.json cannot be read ({err})") from None
    if not isinstance(saved, dict):
        raise UsageError(f"--resume {run_dir}: its args.json does not hold a table of flags")
    saved.pop("algo", None)  # recorded beside the flags; training.run checks it
    for name in JOIN_FLAGS:  # how each process joins is given on its own command line
        saved.pop(name, None)
    values = saved_flags(args_type, saved, f"--resume {run_dir}: its args.json")
    return args_type(**{**values, "resume": run_dir})


def parse(args_type: type[T], argv: list[str] | None = None) -> T:
    """Parse `args_type` with tyro; a UsageError from its __post_init__ exits 2.

    With `--resume DIR`, the flags saved in DIR/args.json are the defaults, so the
    command line needs only what it changes.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        _join_processes(argv)
        resume = _flag(argv, "--resume")
        default = resume_defaults(args_type, resume) if resume else None
        return tyro.cli(args_type, args=argv, default=default)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def make_env(env_id: str, env_kwargs: tuple[str, ...]):
    """`envs.make` for the command line: a bad id or parameter is a UsageError."""
    import envs

    try:
        return envs.make(env_id, **parse_env_kwargs(env_kwargs))
    except envs.UnknownEnvError as err:
        raise UsageError(str(err)) from None
    except (TypeError, ValueError) as err:
        raise UsageError(f"bad --env-kwargs for {env_id}: {err}") from None


def check_training_args(args, extra_positive: tuple[str, ...] = ()):
    """The checks every training script shares; returns the env it builds.

    Sizes must be positive, `relabel_prob` a probability, the batch no larger than
    the buffer, the buffer at least one episode per env, and the budget at least
    one step of every env per chunk.
    """
    from common.buffer import num_rows

    names = (
        "num_seeds",
        "num_envs",
        "total_timesteps",
        "buffer_size",
        "batch_size",
        "gradient_steps",
        "num_chunks",
        "eval_episodes",
        "checkpoint_every",
        *extra_positive,
    )
    for name in names:
        if getattr(args, name) <= 0:
            raise UsageError(
                f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}"
            )
    if not 0.0 <= args.relabel_prob <= 1.0:
        raise UsageError(f"--relabel-prob must be in [0, 1], got {args.relabel_prob}")
    if args.track:
        from common import tracking

        if not tracking.available():
            raise UsageError("--track needs Weights & Biases: `pip install wandb`")
    if args.resume is not None and not os.path.isdir(os.path.join(args.resume, "checkpoint")):
        raise UsageError(
            f"--resume {args.resume}: it has no checkpoint (runs save one with --save-model)"
        )
    env = make_env(args.env_id, args.env_kwargs)
    if args.batch_size > args.buffer_size:
        raise UsageError(
            f"--batch-size {args.batch_size} is larger than the buffer ({args.buffer_size})"
        )
    rows = num_rows(args.buffer_size, args.num_envs)
    if rows < env.episode_length:
        raise UsageError(
            f"--buffer-size {args.buffer_size} holds {rows} steps per env, less than one "
            f"episode ({env.episode_length}); use at least {env.episode_length * args.num_envs}"
        )
    if args.total_timesteps < args.num_envs * args.num_chunks:
        raise UsageError(
            f"--total-timesteps {args.total_timesteps} is less than one step of every env "
            f"per chunk ({args.num_envs} envs x {args.num_chunks} chunks)"
        )
    return env
