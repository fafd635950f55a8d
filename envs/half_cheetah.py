"""Half-cheetah with target velocities (HIPI App. C): run forward at a commanded speed
ψ ∈ [0, 3] m/s, r = −|v − ψ| − 0.05‖a‖², 100-step episodes. MuJoCo MJX physics on
the half_cheetah model that ships with brax (loaded from the installed package).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from envs.core import AT_LEAST_ONE, NON_NEGATIVE, TargetVelocity
from envs.mjx_base import MjxEnv, PhysicsSettings, brax_asset, tracking_camera

MODEL_PATH = brax_asset("half_cheetah.xml")
SETTINGS = PhysicsSettings(
    timestep=0.01, frame_skip=5, iterations=4, ls_iterations=8, contacts=True
)


class HalfCheetah(MjxEnv):
    """Planar cheetah (9 joints: root x, z, pitch and six actuated hinges).

    - start: the model's rest pose plus U[−0.1, 0.1] on every position, velocities
      N(0, 0.1²);
    - action in [−1, 1]⁶ (the model's motor gears);
    - physics: dt 0.01 s × 5 substeps (0.05 s per env step), Euler, contacts with the
      floor, Newton solver 4 iterations / 8 line-search steps (1 iteration lets some
      random-action episodes blow up); `episode_length = 100`.

    Observation (17,): positions without the root x, then all velocities. Features
    (1,): the forward velocity averaged over the env step, (x' − x) / 0.05 s.
    """

    # what envs.make accepts for each parameter, beyond its type
    PARAMETER_RANGES = {"ctrl_cost": NON_NEGATIVE, "episode_length": AT_LEAST_ONE}

    def __init__(
        self,
        low: float = 0.0,
        high: float = 3.0,
        ctrl_cost: float = 0.05,
        episode_length: int = 100,
    ):
        if not low <= high or ctrl_cost < 0 or episode_length < 1:
            raise ValueError(
                f"need low <= high, ctrl_cost >= 0 and episode_length >= 1, got "
                f"{low}, {high}, {ctrl_cost}, {episode_length}"
            )
        self.family = TargetVelocity(low=low, high=high, ctrl_cost=ctrl_cost)
        # The model's deprecated `settotalmass="14"` makes mujoco write a warning file;
        # the same scaling is applied after compiling instead.
        with open(MODEL_PATH) as f:
            xml = f.read().replace('settotalmass="14"', "")
        self._init_physics(xml, SETTINGS, total_mass=14.0)
        self._qpos0 = jnp.asarray(self.mj_model.qpos0, jnp.float32)
        self.observation_size = self.mj_model.nq - 1 + self.mj_model.nv
        self.action_size = self.mj_model.nu
        self.episode_length = episode_length
        self.terminate_on_success = False

    def _reset_physics(self, key, task):
        del task
        position_key, velocity_key = jax.random.split(key)
        nq, nv = self.mj_model.nq, self.mj_model.nv
        qpos = self._qpos0 + jax.random.uniform(position_key, (nq,), minval=-0.1, maxval=0.1)
        qvel = 0.1 * jax.random.normal(velocity_key, (nv,))
        data = self.kinematics(qpos, qvel)
        features = qvel[:1]
        return self.physics_of(data), jnp.concatenate([qpos[1:], qvel]), features

    def _step_physics(self, physics, action, key):
        del key
        data = self.simulate(physics, jnp.clip(action, -1.0, 1.0))
        velocity = (data.qpos[:1] - physics.qpos[:1]) / self.settings.control_dt
        obs = jnp.concatenate([data.qpos[1:], data.qvel])
        return self.physics_of(data), obs, velocity

    def _camera(self, data):
        return tracking_camera(self.mj_model, "torso", distance=4.0, elevation=-10.0)
