"""Point-mass navigation in N dimensions (Tang & Kucukelbir 2021, Sec. 4.1): move a
point inside a box towards a goal; sparse -1/0 reward within an L2 margin."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from envs import draw
from envs.core import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, Env, GoalReaching, GoalSet


class PointNav(Env):
    """A point in the box [-1, 1]^dim moves by `max_step * clip(action, -1, 1)`.

    Settings (this project's choices; they are not the paper's published constants):
    - box [-1, 1]^dim, the position clipped to it after every step;
    - start and goal both uniform in the box (`random_start=False` starts at the
      origin instead);
    - `max_step = 0.1` per dimension (an L∞ move), so the farthest goal is
      `2 / max_step = 20` steps away in every dimension at once, whatever `dim`;
    - `episode_length = 50`, 2.5 times that worst case;
    - `margin = 0.1` (L2), the same in every `dim`: random goals get harder to
      hit by chance as `dim` grows, which is the regime the paper studies.

    `num_goals = K > 0` replaces the continuous goal prior by a fixed set of K goals
    (uniform in the box, drawn once with `goal_seed`): a finite task family.

    Observation and features are the position (dim,); the task is the goal (dim,).
    `physics` is the position, so tests and plots can place the point by hand.
    """

    # what envs.make accepts for each parameter, beyond its type
    PARAMETER_RANGES = {
        "dim": AT_LEAST_ONE,
        "margin": POSITIVE,
        "max_step": POSITIVE,
        "episode_length": AT_LEAST_ONE,
        "num_goals": NON_NEGATIVE,
        "goal_seed": NON_NEGATIVE,
    }

    def __init__(
        self,
        dim: int = 2,
        margin: float = 0.1,
        max_step: float = 0.1,
        episode_length: int = 50,
        terminate_on_success: bool = False,
        random_start: bool = True,
        num_goals: int = 0,
        goal_seed: int = 0,
    ):
        if dim < 1:
            raise ValueError(f"dim must be at least 1, got {dim}")
        if margin <= 0 or max_step <= 0 or episode_length < 1:
            raise ValueError(
                f"margin, max_step and episode_length must be positive, got "
                f"{margin}, {max_step}, {episode_length}"
            )
        self.dim = dim
        self.max_step = max_step
        self.random_start = random_start
        self.low = -jnp.ones((dim,), jnp.float32)
        self.high = jnp.ones((dim,), jnp.float32)
        if num_goals < 0:
            raise ValueError(f"num_goals must not be negative, got {num_goals}")
        if num_goals:  # a fixed discrete goal set, drawn once from goal_seed
            goals = np.random.default_rng(goal_seed).uniform(-1, 1, (num_goals, dim))
            self.family = GoalSet(goals=jnp.asarray(goals, jnp.float32), margin=margin)
        else:
            self.family = GoalReaching(goal_low=self.low, goal_high=self.high, margin=margin)
        self.observation_size = dim
        self.action_size = dim
        self.episode_length = episode_length
        self.terminate_on_success = terminate_on_success

    def _reset_physics(self, key, task):
        del task
        if self.random_start:
            position = jax.random.uniform(key, (self.dim,), minval=self.low, maxval=self.high)
        else:
            position = jnp.zeros((self.dim,), jnp.float32)
        return position, position, position

    def _step_physics(self, physics, action, key):
        del key
        delta = self.max_step * jnp.clip(action, -1.0, 1.0)
        position = jnp.clip(physics + delta, self.low, self.high)
        return position, position, position

    def render(self, states, width=240, height=240):
        """The first two coordinates: the path, the point and the goal within its margin."""
        points, goals = np.asarray(states.next_obs), np.asarray(states.task)
        if self.dim == 1:  # a line: draw it along x
            points, goals = np.pad(points, ((0, 0), (0, 1))), np.pad(goals, ((0, 0), (0, 1)))
        note = f"(dims 1-2 of {self.dim})" if self.dim > 2 else ""

        def paint(ax, t):
            ax.set_xlim(-1.05, 1.05)
            ax.set_ylim(-1.05, 1.05)
            ax.set_aspect("equal")
            draw.point_path(ax, points, t, goals[t], self.family.margin)
            draw.caption(ax, states, t, note)

        return draw.frames(len(points), width, height, paint)
