"""Command-line handling shared by the scripts: tyro parsing, `--env-kwargs`
values, and user errors reported as one sentence with exit code 2."""

from __future__ import annotations

import ast
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


def parse(args_type: type[T], argv: list[str] | None = None) -> T:
    """Parse `args_type` with tyro; a UsageError from its __post_init__ exits 2."""
    try:
        return tyro.cli(args_type, args=argv)
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
        *extra_positive,
    )
    for name in names:
        if getattr(args, name) <= 0:
            raise UsageError(
                f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}"
            )
    if not 0.0 <= args.relabel_prob <= 1.0:
        raise UsageError(f"--relabel-prob must be in [0, 1], got {args.relabel_prob}")
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
