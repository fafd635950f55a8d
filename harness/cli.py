"""Command-line handling shared by the scripts: tyro parsing, `--env-kwargs`
values, and user errors reported as one sentence with exit code 2."""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import difflib
import functools
import json
import math
import os
import sys
import types
import typing
from typing import TypeVar

import tyro

try:  # tyro's hook for parse errors (private in tyro 1.0); without it tyro draws its own box
    from tyro._errors import (
        BadValue,
        InstantiationFailure,
        InvalidChoice,
        MissingArgs,
        UnrecognizedArgs,
        on_parse_error,
    )
except ImportError:
    on_parse_error = None

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
        if name in kwargs:
            raise UsageError(f"--env-kwargs gives {name} twice")
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
    try:
        num_processes = int(num)
    except ValueError:
        raise UsageError(f"--num-processes takes an integer, got {num!r}") from None
    if num_processes < 1:
        raise UsageError(f"--num-processes must be positive, got {num_processes}")
    if address is None or index is None:
        raise UsageError("--num-processes > 1 needs --coordinator-address and --process-id")
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 2**16:
        raise UsageError(f"--coordinator-address takes host:port, got {address!r}")
    try:
        process_id = int(index)
    except ValueError:
        raise UsageError(f"--process-id takes an integer, got {index!r}") from None
    if not 0 <= process_id < num_processes:
        raise UsageError(f"--process-id {process_id} is not in 0 .. {num_processes - 1}")
    from common import parallel

    parallel.initialize(address, num_processes, process_id)


def _as_field_type(value, default):
    """JSON lists back to the tuples the Args fields hold."""
    if isinstance(default, tuple) and isinstance(value, list):
        return tuple(_as_field_type(v, default[0] if default else None) for v in value)
    return value


def _fits(value, hint) -> bool:
    """Whether a value read from JSON has the type `hint` of an Args field."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, h) for h in args)
    if origin is typing.Literal:
        return value in args
    if origin is tuple:
        return isinstance(value, tuple) and all(_fits(v, args[0]) for v in value)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint) if isinstance(hint, type) else True


def saved_flags(args_type: type, saved: dict, source: str) -> dict:
    """Flags saved as JSON, as keyword arguments of `args_type` (lists back to tuples);
    a flag the type lacks, or a value of another type, is a UsageError that starts with
    `source`."""
    fields = {f.name: f.default for f in dataclasses.fields(args_type)}
    unknown = sorted(set(saved) - set(fields))
    if unknown:
        raise UsageError(
            f"{source} has flags this script lacks ({', '.join(unknown)}); "
            "it was written by another script or version"
        )
    values = {name: _as_field_type(value, fields[name]) for name, value in saved.items()}
    hints = typing.get_type_hints(args_type)
    for name, value in values.items():
        if not _fits(value, hints[name]):
            hint = hints[name]
            if typing.get_origin(hint) is typing.Literal:
                expected = "one of " + ", ".join(map(str, typing.get_args(hint)))
            else:
                expected = hint.__name__ if isinstance(hint, type) else str(hint)
            raise UsageError(f"{source} gives {name} = {value!r}, which is not {expected}")
    return values


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
    saved.pop("algo", None)  # recorded beside the flags; training.start checks it
    for name in JOIN_FLAGS:  # how each process joins is given on its own command line
        saved.pop(name, None)
    values = saved_flags(args_type, saved, f"--resume {run_dir}: its args.json")
    return args_type(**{**values, "resume": run_dir})


def _flag_names(args_type: type) -> list[str]:
    names = []
    for field in dataclasses.fields(args_type):
        flag = "--" + field.name.replace("_", "-")
        names += [flag, "--no-" + flag[2:]] if field.type in (bool, "bool") else [flag]
    return names


def _parse_error(args_type: type, event) -> str:
    """One sentence for a command line tyro cannot parse (tyro would draw a box of lines)."""
    see = "see --help"
    if isinstance(event, UnrecognizedArgs):
        flags = [token for token in event.tokens if token.startswith("-")]
        if not flags:
            return f"unexpected argument {event.tokens[0]!r}; {see}"
        name = flags[0].split("=", 1)[0]
        close = difflib.get_close_matches(name, _flag_names(args_type), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        return f"unrecognized flag {name}{hint}; {see}"
    if isinstance(event, InvalidChoice):
        flag = event.argument.display_name()
        return f"{flag} must be one of {', '.join(event.choices)}, got {event.value!r}"
    if isinstance(event, BadValue):
        flag = event.argument.display_name()
        if event.offending_value is None:
            return f"{flag} needs a value; {see}"
        return f"{flag} takes no value, got {event.offending_value!r}; {see}"
    if isinstance(event, MissingArgs):
        names = ", ".join(a.arg.display_name() for a in event.missing_arguments)
        return f"missing required argument {names}; {see}"
    if isinstance(event, InstantiationFailure):
        where = f"{event.argument.display_name()}: " if event.argument is not None else ""
        return f"{where}{event.message}; {see}"
    return f"the command line cannot be parsed ({type(event).__name__}); {see}"


# Flags renamed so that one idea has one spelling in every script: the old spelling is
# refused with a sentence naming the new one (kept until the next release series).
RENAMED_FLAGS = {
    "--strategy": "--relabel",
    "--clip-q": "--clip-target",
    "--no-clip-q": "--no-clip-target",
    "--normalize": "--normalize-obs",
    "--no-normalize": "--no-normalize-obs",
}


def _refuse_old_spellings(args_type: type, argv: list[str]) -> None:
    own = set(_flag_names(args_type))
    for token in argv:
        name = token.split("=", 1)[0]
        new = RENAMED_FLAGS.get(name)
        if new is not None and name not in own and new in own:
            raise UsageError(f"{name} is now spelled {new}")


def parse(args_type: type[T], argv: list[str] | None = None) -> T:
    """Parse `args_type` with tyro; a UsageError from its __post_init__ exits 2, and so does
    a command line tyro cannot parse, in one sentence too.

    With `--resume DIR`, the flags saved in DIR/args.json are the defaults, so the
    command line needs only what it changes.
    """
    argv = sys.argv[1:] if argv is None else list(argv)

    def refuse(event) -> None:
        raise UsageError(_parse_error(args_type, event))

    try:
        _refuse_old_spellings(args_type, argv)
        _join_processes(argv)
        resume = _flag(argv, "--resume")
        default = resume_defaults(args_type, resume) if resume else None
        with on_parse_error(refuse) if on_parse_error else contextlib.nullcontext():
            return tyro.cli(args_type, args=argv, default=default)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


@functools.lru_cache(maxsize=8)
def make_env(env_id: str, env_kwargs: tuple[str, ...]):
    """`envs.make` for the command line: a bad id or parameter is a UsageError.

    Built once per (id, parameters) in a process: the Args checks read the env that
    `make_train` then uses (an env is a pure, immutable description; building an MJX
    env loads and converts its model, which is what the cache saves)."""
    import envs

    try:
        return envs.make(env_id, **parse_env_kwargs(env_kwargs))
    except envs.UnknownEnvError as err:
        raise UsageError(str(err)) from None
    except (TypeError, ValueError) as err:
        raise UsageError(f"bad --env-kwargs for {env_id}: {err}") from None


def _within(value, interval: str) -> bool:
    if isinstance(value, float) and not math.isfinite(value):
        return False
    if interval.startswith(">="):
        return value >= float(interval[2:])
    if interval.startswith(">"):
        return value > float(interval[1:])
    low, high = (float(bound) for bound in interval[1:-1].split(","))
    above = value > low if interval[0] == "(" else value >= low
    below = value < high if interval[-1] == ")" else value <= high
    return above and below


def _must(interval: str) -> str:
    named = {"> 0": "be positive", ">= 0": "not be negative"}
    if interval in named:
        return named[interval]
    if interval.startswith(">="):
        return f"be at least {interval[2:].strip()}"
    if interval.startswith(">"):
        return f"be greater than {interval[1:].strip()}"
    return f"be in {interval}"


def check_numbers(args, **intervals: str) -> None:
    """Every float field of `args` finite, and each named field within its interval, written
    "> 0", ">= 0" or like "[0, 1)" (a tuple field: each of its entries; None: not given).
    Raises a UsageError naming the flag, what it must be and the value given."""
    for field in dataclasses.fields(args):
        value = getattr(args, field.name)
        if isinstance(value, float) and not math.isfinite(value):
            flag = "--" + field.name.replace("_", "-")
            raise UsageError(f"{flag} must be a finite number, got {value}")
    for name, interval in intervals.items():
        value = getattr(args, name)
        for entry in value if isinstance(value, tuple) else (value,):
            if entry is not None and not _within(entry, interval):
                flag = "--" + name.replace("_", "-")
                raise UsageError(f"{flag} must {_must(interval)}, got {entry}")


def check_output_dir(flag: str, path: str) -> None:
    """`path` is a directory this process can write logs in, or can be made one: a
    UsageError names the file in the way or the directory that is not writable."""
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UsageError(f"{flag} {path}: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: this user cannot write in {existing}")


def check_run_flags(args) -> None:
    """--track needs wandb installed; --resume needs a directory with a checkpoint."""
    if args.track:
        from harness import tracking

        if not tracking.available():
            raise UsageError("--track needs Weights & Biases: `pip install wandb`")
    if args.resume is not None and not os.path.isdir(os.path.join(args.resume, "checkpoint")):
        raise UsageError(
            f"--resume {args.resume}: it has no checkpoint (runs save one with --save-model)"
        )


def check_training_args(args, **intervals: str):
    """The checks every training script shares, with the script's own `intervals` (as
    `check_numbers` takes them); returns the env it builds.

    Sizes must be positive, probabilities in [0, 1], gamma in [0, 1), tau in (0, 1], the
    seeds in 0 .. 2^31 - 1, the batch no larger than the buffer, the buffer at least one
    episode per env, and the budget at least one step of every env per chunk.
    """
    from common.buffer import num_rows

    positive = (
        "num_seeds",
        "num_envs",
        "total_timesteps",
        "buffer_size",
        "batch_size",
        "gradient_steps",
        "num_chunks",
        "eval_episodes",
        "checkpoint_every",
        "hidden_sizes",
        "learning_rate",
        "num_devices",
        "num_processes",
    )
    check_numbers(
        args,
        **dict.fromkeys(positive, "> 0"),
        relabel_prob="[0, 1]",
        gamma="[0, 1)",
        tau="(0, 1]",
        **intervals,
    )
    check_numbers(
        args, seed=f"[0, {2**31 - args.num_seeds}]", process_id=f"[0, {args.num_processes - 1}]"
    )
    if not args.hidden_sizes:
        raise UsageError("--hidden-sizes needs at least one layer width")
    check_run_flags(args)
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
