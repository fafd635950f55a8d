"""Bit flipping (Andrychowicz et al. 2017, Sec. 3.1): flip one of n bits per step
to reach a target bit string. Sparse reward, episode length n."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from envs import draw
from envs.core import AT_LEAST_ONE, BitGoals, Env


class BitFlip(Env):
    """n bits; action k flips bit k; the goal is a uniformly random bit string.

    Observation and features are the current bits; the start state is uniform
    too. The episode ends when the bits match the goal (a step must flip a bit,
    so without termination only goals at the right parity could be held at the
    last step); an episode that starts solved needs two flips.
    """

    # what envs.make accepts for each parameter, beyond its type
    PARAMETER_RANGES = {"n_bits": AT_LEAST_ONE, "episode_length": AT_LEAST_ONE}

    def __init__(
        self, n_bits: int = 10, episode_length: int | None = None, terminate_on_success: bool = True
    ):
        if n_bits < 1:
            raise ValueError(f"n_bits must be at least 1, got {n_bits}")
        self.n_bits = n_bits
        self.family = BitGoals(n_bits=n_bits)
        self.observation_size = n_bits
        self.action_size = 1
        self.num_actions = n_bits
        self.episode_length = n_bits if episode_length is None else episode_length
        self.terminate_on_success = terminate_on_success

    def _reset_physics(self, key, task):
        del task
        bits = jax.random.bernoulli(key, 0.5, (self.n_bits,)).astype(jnp.float32)
        return bits, bits, bits

    def _step_physics(self, physics, action, key):
        del key
        bits = physics.at[action].set(1.0 - physics[action])
        return bits, bits, bits

    def render(self, states, width=240, height=120):
        """Two rows of cells: the bits (top) and the goal (bottom)."""
        bits, goals = np.asarray(states.next_obs), np.asarray(states.task)

        def paint(ax, t):
            ax.imshow(np.stack([bits[t], goals[t]]), cmap="Blues", vmin=0, vmax=1.3)
            ax.set_yticks([0, 1], ["bits", "goal"], fontsize=7)
            draw.caption(ax, states, t)

        return draw.frames(len(bits), width, height, paint)
