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


def _half_cheetah(**kwargs):
    from envs.half_cheetah import HalfCheetah

    return HalfCheetah(**kwargs)


def _walker(**kwargs):
    from envs.walker import Walker

    return Walker(**kwargs)


def _quadruped(**kwargs):
    from envs.quadruped import Quadruped

    return Quadruped(**kwargs)


def _arm_reach(**kwargs):
    from envs.arm_reach import ArmReach

    return ArmReach(**kwargs)


def _finger(**kwargs):
    from envs.finger import Finger

    return Finger(**kwargs)


_REGISTRY = {
    "bitflip": _bitflip,
    "pointnav": _pointnav,
    "four_rooms": _four_rooms,
    "reacher": _reacher,
    "half_cheetah": _half_cheetah,
    "walker": _walker,
    "quadruped": _quadruped,
    "arm_reach": _arm_reach,
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
    "has_achieved",
    "make",
]
