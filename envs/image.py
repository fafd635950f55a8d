"""Image observations of 2-D point envs, drawn inside jit (pure JAX).

`ImageObs(env)` wraps `pointnav` (dim=2) or `four_rooms`: the observation becomes a
`size x size` grayscale picture of the state, flattened to (size * size,) floats in
[0, 1], with `image_shape = (size, size, 1)` telling networks how to fold it back.
The agent is a Gaussian blob of `blob_radius` pixels at its position (so sub-pixel
moves change the picture); four_rooms walls are drawn at half intensity. Goals are
NOT drawn: the task, the features and therefore the reward, success and hindsight
goals stay low-dimensional positions, exactly those of the wrapped env.

Image row i, column j shows the position whose first coordinate grows with j and
whose second coordinate grows with i (pixel centres; the box maps onto the image).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from envs.core import Env


class ImageObs(Env):
    """`env` with its observation replaced by a drawing of its 2-D position."""

    def __init__(self, env: Env, size: int = 32, blob_radius: float = 1.0):
        from envs.four_rooms import FourRooms
        from envs.pointnav import PointNav

        if size < 4 or blob_radius <= 0:
            raise ValueError(f"size must be at least 4 and blob_radius positive, got {size}")
        if isinstance(env, PointNav) and env.dim == 2:
            low, high = np.asarray(env.low), np.asarray(env.high)
            walls = np.zeros((size, size), np.float32)
        elif isinstance(env, FourRooms):
            low, high = np.zeros(2), np.asarray(env.upper)
            walls = self._wall_image(np.asarray(env.walls), size)
        else:
            raise ValueError(
                f"image observations are drawn for pointnav with dim=2 and four_rooms only, "
                f"not {type(env).__name__}"
                + (f" with dim={env.dim}" if hasattr(env, "dim") else "")
            )
        self.env = env
        self.size = size
        self.blob_radius = blob_radius
        self.image_shape = (size, size, 1)
        self.observation_size = size * size
        self.family = env.family
        self.action_size = env.action_size
        self.num_actions = env.num_actions
        self.episode_length = env.episode_length
        self.terminate_on_success = env.terminate_on_success
        self.low = jnp.asarray(low, jnp.float32)
        self.high = jnp.asarray(high, jnp.float32)
        self.background = jnp.asarray(walls)  # (size, size)

    @staticmethod
    def _wall_image(walls: np.ndarray, size: int) -> np.ndarray:
        """0.5 where the pixel centre lies in a wall cell: walls[i, j] covers positions
        (i..i+1, j..j+1); the first coordinate runs along image columns."""
        height, width = walls.shape
        centres = (np.arange(size) + 0.5) / size
        first = np.floor(centres * height).astype(int)  # per column
        second = np.floor(centres * width).astype(int)  # per row
        return 0.5 * walls[first[None, :], second[:, None]].astype(np.float32)

    def draw(self, position: jax.Array) -> jax.Array:
        """The picture of one 2-D position: (size * size,) float32 in [0, 1]."""
        pixel = (position - self.low) / (self.high - self.low) * self.size  # (2,) in pixels
        centres = jnp.arange(self.size, dtype=jnp.float32) + 0.5
        d2 = (centres[None, :] - pixel[0]) ** 2 + (centres[:, None] - pixel[1]) ** 2
        blob = jnp.exp(-0.5 * d2 / self.blob_radius**2)  # (size, size): rows i, columns j
        return jnp.maximum(self.background, blob).reshape(-1)

    def _sample_task(self, key, physics_key):
        return self.env._sample_task(key, physics_key)

    def _reset_physics(self, key, task):
        physics, _, features = self.env._reset_physics(key, task)
        return physics, self.draw(features), features

    def _step_physics(self, physics, action, key):
        physics, _, features = self.env._step_physics(physics, action, key)
        return physics, self.draw(features), features

    def render(self, states, width: int = 240, height: int = 240) -> np.ndarray:
        """The wrapped env's frames: its renderers read positions from `next_obs`."""
        positions = states.replace(obs=states.features, next_obs=states.features)
        return self.env.render(positions, width, height)


def image_of(env: ImageObs, position: jax.Array) -> jax.Array:
    """(size, size) picture of a batch-free position, for plots and tests."""
    return env.draw(position).reshape(env.size, env.size)


__all__ = ["ImageObs", "image_of"]
