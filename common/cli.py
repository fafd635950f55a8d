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
