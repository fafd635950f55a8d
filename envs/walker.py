"""Planar walker with linear rewards (HIPI App. C): r = ψ·φ(s, a) with φ = (torso height
− 0.5, forward velocity, feet x/z relative to the centre of mass, ‖a‖²), ψ ∈ [−1, 1]⁶
for the state terms and a control weight in [−1, 0]; 100-step episodes. MuJoCo MJX
physics on the walker2d model that ships with brax (loaded from the installed package).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from envs.core import AT_LEAST_ONE, LinearReward

# mujoco through mjx_base, which picks the GL backend before mujoco's first import
from envs.mjx_base import MjxEnv, PhysicsSettings, brax_asset, mjx, mujoco, tracking_camera

MODEL_PATH = brax_asset("walker2d.xml")
SETTINGS = PhysicsSettings(
    timestep=0.005, frame_skip=4, iterations=2, ls_iterations=6, contacts=True
)
FEATURES = ("height - 0.5", "forward velocity", "right foot x", "right foot z")
FEATURES += ("left foot x", "left foot z")  # feet relative to the centre of mass


class Walker(MjxEnv):
    """Planar biped (root x, z, pitch and six actuated hinges).

    - start: the model's rest pose and zero velocity, each perturbed by U[−0.005, 0.005];
    - action in [−1, 1]⁶ (the model's motor gears);
    - physics: dt 0.005 s × 4 substeps (0.02 s per env step), Euler, contacts with the
      floor, Newton solver 2 iterations / 6 line-search steps; no termination when it
      falls (a linear task may reward lying down); `episode_length = 100`.

    Observation (17,): positions without the root x, then all velocities. Features
    (6,): torso height − 0.5, forward velocity of the torso averaged over the env
    step, then x and z of the right and left foot relative to the centre of mass.
    The family appends ‖a‖² as the last basis function.
    """

    # what envs.make accepts for each parameter, beyond its type
    PARAMETER_RANGES = {"episode_length": AT_LEAST_ONE}

    def __init__(self, episode_length: int = 100):
        if episode_length < 1:
            raise ValueError(f"episode_length must be positive, got {episode_length}")
        d = len(FEATURES)
        self.family = LinearReward(
            task_low=jnp.concatenate([-jnp.ones(d), -jnp.ones(1)]),
            task_high=jnp.concatenate([jnp.ones(d), jnp.zeros(1)]),
            action_in_task=True,
        )
        self._init_physics(MODEL_PATH, SETTINGS)
        body = lambda name: mujoco.mj_name2id(self.mj_model, mujoco.mjtObj.mjOBJ_BODY, name)  # noqa: E731
        self._torso, self._feet = body("torso"), jnp.array([body("foot"), body("foot_left")])
        self._qpos0 = jnp.asarray(self.mj_model.qpos0, jnp.float32)
        self.observation_size = self.mj_model.nq - 1 + self.mj_model.nv
        self.action_size = self.mj_model.nu
        self.episode_length = episode_length
        self.terminate_on_success = False

    def _features(self, data, velocity):
        data = mjx.com_pos(self.mjx_model, data)
        com = data.subtree_com[0]  # the whole model's centre of mass
        feet = (data.xpos[self._feet] - com)[:, jnp.array([0, 2])].ravel()
        height = data.xpos[self._torso, 2] - 0.5
        return jnp.concatenate([height[None], velocity, feet])

    def _reset_physics(self, key, task):
        del task
        position_key, velocity_key = jax.random.split(key)
        nq, nv = self.mj_model.nq, self.mj_model.nv
        noise = 0.005
        qpos = self._qpos0 + jax.random.uniform(position_key, (nq,), minval=-noise, maxval=noise)
        qvel = jax.random.uniform(velocity_key, (nv,), minval=-noise, maxval=noise)
        data = self.kinematics(qpos, qvel)
        features = self._features(data, qvel[:1])
        return self.physics_of(data), jnp.concatenate([qpos[1:], qvel]), features

    def _step_physics(self, physics, action, key):
        del key
        data = self.simulate(physics, jnp.clip(action, -1.0, 1.0))
        velocity = (data.qpos[:1] - physics.qpos[:1]) / self.settings.control_dt
        obs = jnp.concatenate([data.qpos[1:], data.qvel])
        return self.physics_of(data), obs, self._features(data, velocity)

    def _camera(self, data):
        return tracking_camera(self.mj_model, "torso", distance=4.0, elevation=-10.0)
