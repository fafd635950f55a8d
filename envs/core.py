"""The environment and task-family interface every env in `envs/` implements.

An environment is a pure, static object: `reset(key) -> EnvState` and
`step(state, action) -> EnvState`, both jit- and vmap-able. The task ψ lives in
the state. `step` auto-resets: when an episode ends, the returned state already
holds the first observation of a new episode with a fresh key and a fresh task
drawn from the prior, while the fields describing the transition just taken
(`next_obs`, `features`, `reward`, `terminated`, `truncated`, `success`)
describe the state the step reached, before the reset.

A task family turns stored per-step `features` into the reward and success of
ANY task, so relabeling can recompute them inside jit. Functions are written
for one example; callers vmap them.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct


@struct.dataclass
class EnvState:
    obs: jax.Array  # (obs_dim,) observation to act on (task excluded)
    task: jax.Array  # (task_dim,) ψ commanded in the current episode
    next_obs: jax.Array  # (obs_dim,) observation the last step reached, before any reset
    features: jax.Array  # (feature_dim,) features of the state the last step reached
    reward: jax.Array  # () r_ψ of the last step, for the task commanded then
    terminated: jax.Array  # () bool, the last step ended its episode in a terminal state
    truncated: jax.Array  # () bool, the last step ended its episode by the time limit
    success: jax.Array  # () bool, the last step solved its task
    t: jax.Array  # () int32, steps taken so far in the current episode
    key: jax.Array  # typed PRNG key of this env
    physics: Any  # env-specific simulator state (pytree)


class TaskFamily(Protocol):
    """What relabeling needs from a family of tasks ψ.

    reward/success take ONE example: `features` of the state reached by the step
    (feature_dim,), the `action` taken, the `task` (task_dim,).
    """

    task_dim: int
    tasks: jax.Array | None  # (K, task_dim) for finite families, else None
    reward_bounds: tuple[float, float] | None  # (min, max) of r_ψ over all ψ, if known

    def sample(self, key: jax.Array, shape: tuple[int, ...] = ()) -> jax.Array: ...

    def reward(self, features: jax.Array, action: jax.Array, task: jax.Array) -> jax.Array: ...

    def success(self, features: jax.Array, task: jax.Array) -> jax.Array: ...

    # Goal families also define `achieved(features) -> task` (the ψ the state solves).


class RenderError(RuntimeError):
    """An env cannot draw frames here (no renderer for it, or no headless GL backend)."""


@dataclasses.dataclass(frozen=True)
class AtLeast:
    """The lower bound of a numeric env parameter (`strict`: the bound itself excluded);
    envs declare them in `PARAMETER_RANGES`, which `envs.make` checks."""

    low: float
    strict: bool = False

    def __contains__(self, value: float) -> bool:
        return value > self.low if self.strict else value >= self.low

    def __str__(self) -> str:
        return f"{'>' if self.strict else '≥'} {self.low:g}"


POSITIVE = AtLeast(0, strict=True)
NON_NEGATIVE = AtLeast(0)
AT_LEAST_ONE = AtLeast(1)


def has_achieved(family: Any) -> bool:
    """Whether the family can name the goal a state reaches (HER's final/future need it)."""
    return callable(getattr(family, "achieved", None))


def within_margin(features: jax.Array, task: jax.Array, margin: float) -> jax.Array:
    """Success of goal families: the achieved point lies within an L2 margin of the goal."""
    return jnp.linalg.norm(features - task, axis=-1) <= margin


def sparse_reward(success: jax.Array) -> jax.Array:
    """The sparse goal reward: 0 on success, -1 otherwise."""
    return success.astype(jnp.float32) - 1.0


class _MarginGoals:
    """What the continuous goal families share: the goal g is a point, reached within
    an L2 margin `self.margin` (r = 0 on success, -1 otherwise); a state reaches the
    point its features name."""

    @property
    def tasks(self) -> None:
        return None

    @property
    def reward_bounds(self) -> tuple[float, float]:
        return (-1.0, 0.0)

    def success(self, features, task):
        return within_margin(features, task, self.margin)

    def reward(self, features, action, task):
        del action
        return sparse_reward(self.success(features, task))

    def achieved(self, features):
        return features


@struct.dataclass
class GoalReaching(_MarginGoals):
    """Reach a goal g within an L2 margin: r = 0 on success, -1 otherwise.

    `features` are the achieved goal coordinates of the state (goal_dim,).
    """

    goal_low: jax.Array  # (goal_dim,)
    goal_high: jax.Array  # (goal_dim,)
    margin: float = struct.field(pytree_node=False, default=0.1)

    @property
    def task_dim(self) -> int:
        return self.goal_low.shape[-1]

    def sample(self, key, shape=()):
        return jax.random.uniform(
            key, (*shape, self.task_dim), minval=self.goal_low, maxval=self.goal_high
        )


@struct.dataclass
class GoalSet:
    """A finite set of K goals, each reached within an L2 margin: r = 0 on success,
    -1 otherwise. The prior is uniform over the set. A state reaches a point, not
    necessarily a member of the set, so the family has no `achieved`.
    """

    goals: jax.Array  # (K, goal_dim)
    margin: float = struct.field(pytree_node=False, default=0.1)

    @property
    def task_dim(self) -> int:
        return self.goals.shape[-1]

    @property
    def tasks(self) -> jax.Array:
        return self.goals

    @property
    def reward_bounds(self) -> tuple[float, float]:
        return (-1.0, 0.0)

    def sample(self, key, shape=()):
        return self.goals[jax.random.randint(key, shape, 0, self.goals.shape[0])]

    def success(self, features, task):
        return within_margin(features, task, self.margin)

    def reward(self, features, action, task):
        del action
        return sparse_reward(self.success(features, task))


@struct.dataclass
class BallGoalReaching(_MarginGoals):
    """Reach a goal g within an L2 margin: r = 0 on success, -1 otherwise. The prior is
    uniform (by volume) in the shell r_low <= |g - center| <= r_high; r_low = r_high
    puts the goals on a sphere (a circle in 2-D).

    `features` are the achieved goal coordinates of the state (goal_dim,).
    """

    center: jax.Array  # (goal_dim,)
    r_low: float = struct.field(pytree_node=False, default=0.0)
    r_high: float = struct.field(pytree_node=False, default=1.0)
    margin: float = struct.field(pytree_node=False, default=0.1)

    @property
    def task_dim(self) -> int:
        return self.center.shape[-1]

    def sample(self, key, shape=()):
        direction_key, radius_key = jax.random.split(key)
        direction = jax.random.normal(direction_key, (*shape, self.task_dim))
        direction = direction / jnp.linalg.norm(direction, axis=-1, keepdims=True)
        u = jax.random.uniform(radius_key, (*shape, 1))
        low, high, dim = self.r_low**self.task_dim, self.r_high**self.task_dim, self.task_dim
        return self.center + direction * (low + u * (high - low)) ** (1.0 / dim)


@struct.dataclass
class GoalMargin:
    """ψ = (g, m): reach goal g within margin m, r = 0 on success, -1 otherwise. The
    prior draws g from `goals.sample` and m ~ U[margin_low, margin_high].

    A state at x solves (x, m) for every m >= 0; `achieved` names the one with
    `achieved_margin` (by default the prior's mean margin).
    """

    goals: Any  # a goal family (e.g. BallGoalReaching) whose prior draws g
    margin_low: float = struct.field(pytree_node=False, default=0.0)
    margin_high: float = struct.field(pytree_node=False, default=0.1)
    achieved_margin: float = struct.field(pytree_node=False, default=0.05)

    @property
    def task_dim(self) -> int:
        return self.goals.task_dim + 1

    @property
    def tasks(self) -> None:
        return None

    @property
    def reward_bounds(self) -> tuple[float, float]:
        return (-1.0, 0.0)

    def sample(self, key, shape=()):
        goal_key, margin_key = jax.random.split(key)
        goal = self.goals.sample(goal_key, shape)
        margin = jax.random.uniform(
            margin_key, (*shape, 1), minval=self.margin_low, maxval=self.margin_high
        )
        return jnp.concatenate([goal, margin], axis=-1)

    def success(self, features, task):
        return within_margin(features, task[..., :-1], task[..., -1])

    def reward(self, features, action, task):
        del action
        return sparse_reward(self.success(features, task))

    def achieved(self, features):
        margin = jnp.full((*features.shape[:-1], 1), self.achieved_margin, features.dtype)
        return jnp.concatenate([features, margin], axis=-1)


@struct.dataclass
class TargetVelocity:
    """Run at a target speed ψ ~ U[low, high]: r = −|v − ψ| − ctrl_cost·‖a‖².

    `features` hold the forward velocity v first. Any speed is a task, so there is no
    `achieved`; `success` (|v − ψ| <= tolerance) is a diagnostic only.
    """

    low: float = struct.field(pytree_node=False, default=0.0)
    high: float = struct.field(pytree_node=False, default=3.0)
    ctrl_cost: float = struct.field(pytree_node=False, default=0.05)
    tolerance: float = struct.field(pytree_node=False, default=0.1)

    @property
    def task_dim(self) -> int:
        return 1

    @property
    def tasks(self) -> None:
        return None

    @property
    def reward_bounds(self) -> None:
        return None

    def sample(self, key, shape=()):
        return jax.random.uniform(key, (*shape, 1), minval=self.low, maxval=self.high)

    def success(self, features, task):
        return jnp.abs(features[..., 0] - task[..., 0]) <= self.tolerance

    def reward(self, features, action, task):
        speed_error = jnp.abs(features[..., 0] - task[..., 0])
        return -speed_error - self.ctrl_cost * jnp.sum(jnp.square(action), axis=-1)


@struct.dataclass
class LinearReward:
    """r = ψ·φ(s, a). With `action_in_task`, φ = (features, ‖a‖²) and the last entry of
    ψ weighs the control term; otherwise φ = features and r adds a fixed
    `action_weight·‖a‖²`. The prior is uniform in [task_low, task_high], or uniform
    on the unit sphere of the features' weights with `unit_direction`.

    No task is "solved" by a state: `success` is always False and there is no
    `achieved`.
    """

    task_low: jax.Array  # (task_dim,)
    task_high: jax.Array  # (task_dim,)
    action_in_task: bool = struct.field(pytree_node=False, default=False)
    action_weight: float = struct.field(pytree_node=False, default=0.0)
    unit_direction: bool = struct.field(pytree_node=False, default=False)

    @property
    def task_dim(self) -> int:
        return self.task_low.shape[-1]

    @property
    def tasks(self) -> None:
        return None

    @property
    def reward_bounds(self) -> None:
        return None

    def sample(self, key, shape=()):
        if self.unit_direction:
            direction = jax.random.normal(key, (*shape, self.task_dim))
            return direction / jnp.linalg.norm(direction, axis=-1, keepdims=True)
        return jax.random.uniform(
            key, (*shape, self.task_dim), minval=self.task_low, maxval=self.task_high
        )

    def success(self, features, task):
        del features
        return jnp.zeros(task.shape[:-1], bool)

    def reward(self, features, action, task):
        control = jnp.sum(jnp.square(action), axis=-1)
        if self.action_in_task:
            return jnp.sum(features * task[..., :-1], axis=-1) + task[..., -1] * control
        return jnp.sum(features * task, axis=-1) + self.action_weight * control


@struct.dataclass
class BitGoals:
    """Match a target bit string exactly: r = 0 when all bits equal, -1 otherwise."""

    n_bits: int = struct.field(pytree_node=False, default=10)

    @property
    def task_dim(self) -> int:
        return self.n_bits

    @property
    def tasks(self) -> None:
        return None

    @property
    def reward_bounds(self) -> tuple[float, float]:
        return (-1.0, 0.0)

    def sample(self, key, shape=()):
        return jax.random.bernoulli(key, 0.5, (*shape, self.n_bits)).astype(jnp.float32)

    def success(self, features, task):
        return jnp.all(features == task, axis=-1)

    def reward(self, features, action, task):
        del action
        return sparse_reward(self.success(features, task))

    def achieved(self, features):
        return features


class Env:
    """Base class: subclasses define the spaces and the three pure hooks below.

    `_reset_physics(key, task) -> (physics, obs, features)` builds a first state;
    `_step_physics(physics, action, key) -> (physics, obs, features)` advances it.
    The base class handles rewards, termination, time limits and auto-reset.
    """

    family: Any
    observation_size: int
    action_size: int  # continuous: dimension of the action; discrete: 1
    num_actions: int | None = None  # discrete: how many actions, else None
    episode_length: int
    terminate_on_success: bool

    @property
    def discrete(self) -> bool:
        return self.num_actions is not None

    def _reset_physics(self, key, task):
        raise NotImplementedError

    def _step_physics(self, physics, action, key):
        raise NotImplementedError

    def render(self, states: EnvState, width: int = 240, height: int = 240) -> np.ndarray:
        """Frames of ONE env's episode, host-side: `states` holds NumPy arrays with a
        leading time axis (T, ...), e.g. what an evaluation rollout recorded.

        Returns uint8 (T, height, width, 3) with the commanded goal drawn where the env
        can show it. Raises `RenderError` with one sentence when frames cannot be drawn.
        """
        del states, width, height
        raise RenderError(f"{type(self).__name__} has no renderer")

    def _sample_task(self, key, physics_key):
        del physics_key
        return self.family.sample(key)

    def reset(self, key: jax.Array) -> EnvState:
        key, task_key, physics_key = jax.random.split(key, 3)
        task = self._sample_task(task_key, physics_key)
        physics, obs, features = self._reset_physics(physics_key, task)
        false = jnp.zeros((), bool)
        return EnvState(
            obs=obs,
            task=task,
            next_obs=obs,
            features=features,
            reward=jnp.zeros((), jnp.float32),
            terminated=false,
            truncated=false,
            success=self.family.success(features, task),
            t=jnp.zeros((), jnp.int32),
            key=key,
            physics=physics,
        )

    def transition(self, state: EnvState, action: jax.Array) -> EnvState:
        """One step WITHOUT auto-reset: the state reached, even when the episode ended
        (what videos draw). Training uses `step`."""
        return self._advance(state, action)[0]

    def step(self, state: EnvState, action: jax.Array) -> EnvState:
        """One step with auto-reset (see the module docstring)."""
        stepped, reset_key = self._advance(state, action)
        return self._auto_reset(stepped, self.reset(reset_key))

    def step_batch(self, states: EnvState, actions: jax.Array) -> EnvState:
        """`jax.vmap(self.step)` over a batch of envs, the same computation (a different
        compiled program, so equal to a few float32 ulps, not bit for bit),
        except that the fresh resets are computed only on steps where some env of the
        batch finished an episode. (Inside `vmap` a `lax.cond` evaluates both branches;
        here it sits outside, so a step without a finished episode skips the resets,
        which for MJX envs means a second physics pass.)"""
        stepped, reset_keys = jax.vmap(self._advance)(states, actions)

        def with_resets(stepped):
            return jax.vmap(self._auto_reset)(stepped, jax.vmap(self.reset)(reset_keys))

        done = stepped.terminated | stepped.truncated
        return jax.lax.cond(jnp.any(done), with_resets, lambda stepped: stepped, stepped)

    def _auto_reset(self, stepped: EnvState, fresh: EnvState) -> EnvState:
        """`fresh` (a fresh key and a fresh task, never a cached state) where the episode
        ended, with the fields of the transition just taken kept from `stepped`."""
        done = stepped.terminated | stepped.truncated
        after = jax.tree.map(lambda a, b: jnp.where(done, a, b), fresh, stepped)
        return after.replace(
            next_obs=stepped.next_obs,
            features=stepped.features,
            reward=stepped.reward,
            terminated=stepped.terminated,
            truncated=stepped.truncated,
            success=stepped.success,
        )

    def _advance(self, state: EnvState, action: jax.Array) -> tuple[EnvState, jax.Array]:
        key, step_key, reset_key = jax.random.split(state.key, 3)
        physics, next_obs, features = self._step_physics(state.physics, action, step_key)
        reward = self.family.reward(features, action, state.task)
        success = self.family.success(features, state.task)
        terminated = success & self.terminate_on_success
        t = state.t + 1
        truncated = (t >= self.episode_length) & ~terminated
        stepped = EnvState(
            obs=next_obs,
            task=state.task,
            next_obs=next_obs,
            features=features,
            reward=reward.astype(jnp.float32),
            terminated=terminated,
            truncated=truncated,
            success=success,
            t=t,
            key=key,
            physics=physics,
        )
        return stepped, reset_key
