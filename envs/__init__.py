"""Task environments: pure, jit- and vmap-able, one file per env.

`make(env_id, **kwargs)` builds one by name; `ENV_IDS` lists the names.
"""

from __future__ import annotations

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


def _bitflip(**kwargs):
    from envs.bitflip import BitFlip

    return BitFlip(**kwargs)


def _pointnav(**kwargs):
    from envs.pointnav import PointNav

    return PointNav(**kwargs)


def _four_rooms(**kwargs):
    from envs.four_rooms import FourRooms

    return FourRooms(**kwargs)


def _reacher(**kwargs):
    from envs.reacher import Reacher

    return Reacher(**kwargs)


_REGISTRY = {
    "bitflip": _bitflip,
    "pointnav": _pointnav,
    "four_rooms": _four_rooms,
    "reacher": _reacher,
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
    "has_achieved",
    "make",
]
