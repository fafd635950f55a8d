"""Task environments: pure, jit- and vmap-able, one file per env.

`make(env_id, **kwargs)` builds one by name; `ENV_IDS` lists the names.
"""

from __future__ import annotations

import inspect
import math
import numbers
import types
import typing

from envs.core import (
    BitGoals,
    Env,
    EnvState,
    GoalReaching,
    GoalSet,
    RenderError,
    TaskFamily,
    has_achieved,
)


def _accepts(hint, allowed, value) -> bool:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(_accepts(h, allowed, value) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    elif hint is float:
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        ok = ok and math.isfinite(value)
    elif hint is str:
        ok = isinstance(value, str)
    else:
        return True
    return ok and (allowed is None or value in allowed)


def _expected(hint, allowed) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_expected(h, allowed) for h in typing.get_args(hint))
    if hint is type(None):
        return "None"
    if hint is bool:
        return "True or False"
    if hint is str and allowed is not None:
        return f"one of {', '.join(allowed)}"
    kind = {int: "an integer", float: "a finite number", str: "a string"}.get(hint, str(hint))
    return kind if allowed is None else f"{kind} {allowed}"


def check_parameters(env_class: type, kwargs: dict) -> None:
    """Each keyword names a parameter of `env_class.__init__` and has its annotated type
    (int, float, bool, str, or one of them or None) within the range the class declares in
    `PARAMETER_RANGES` (an `AtLeast` bound, or the strings a str may be); ValueError if not."""
    names = [name for name in inspect.signature(env_class.__init__).parameters if name != "self"]
    hints = typing.get_type_hints(env_class.__init__)
    ranges = getattr(env_class, "PARAMETER_RANGES", {})
    for name, value in kwargs.items():
        if name not in names:
            raise ValueError(
                f"{env_class.__name__} has no parameter {name!r}; its parameters are "
                f"{', '.join(names)}"
            )
        hint, allowed = hints.get(name), ranges.get(name)
        if hint is not None and not _accepts(hint, allowed, value):
            raise ValueError(f"{name} must be {_expected(hint, allowed)}, got {value!r}")


def _build(env_class: type, kwargs: dict) -> Env:
    check_parameters(env_class, kwargs)
    return env_class(**kwargs)


def _bitflip(**kwargs):
    from envs.bitflip import BitFlip

    return _build(BitFlip, kwargs)


def _pointnav(**kwargs):
    from envs.pointnav import PointNav

    return _build(PointNav, kwargs)


def _four_rooms(**kwargs):
    from envs.four_rooms import FourRooms

    return _build(FourRooms, kwargs)


def _reacher(**kwargs):
    from envs.reacher import Reacher

    return _build(Reacher, kwargs)


def _half_cheetah(**kwargs):
    from envs.half_cheetah import HalfCheetah

    return _build(HalfCheetah, kwargs)


def _walker(**kwargs):
    from envs.walker import Walker

    return _build(Walker, kwargs)


def _quadruped(**kwargs):
    from envs.quadruped import Quadruped

    return _build(Quadruped, kwargs)


def _arm_reach(**kwargs):
    from envs.arm_reach import ArmReach

    return _build(ArmReach, kwargs)


def _push(**kwargs):
    from envs.push import Push

    return _build(Push, kwargs)


def _finger(**kwargs):
    from envs.finger import Finger

    return _build(Finger, kwargs)


_REGISTRY = {
    "bitflip": _bitflip,
    "pointnav": _pointnav,
    "four_rooms": _four_rooms,
    "reacher": _reacher,
    "half_cheetah": _half_cheetah,
    "walker": _walker,
    "quadruped": _quadruped,
    "arm_reach": _arm_reach,
    "push": _push,
    "finger": _finger,
}
ENV_IDS = tuple(_REGISTRY)


class UnknownEnvError(ValueError):
    pass


def make(env_id: str, **kwargs) -> Env:
    """Build the env named `env_id` with its keyword parameters."""
    if env_id not in _REGISTRY:
        raise UnknownEnvError(f"unknown env id {env_id!r}; valid ids are: {', '.join(ENV_IDS)}")
    return _REGISTRY[env_id](**kwargs)


__all__ = [
    "ENV_IDS",
    "BitGoals",
    "Env",
    "EnvState",
    "GoalReaching",
    "GoalSet",
    "RenderError",
    "TaskFamily",
    "UnknownEnvError",
    "check_parameters",
    "has_achieved",
    "make",
]
