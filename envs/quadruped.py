"""Quadruped (ant-like; HIPI App. C), MuJoCo MJX physics on the ant model that ships
with brax (loaded from the installed package, the torso made to collide with the
floor). Two task families, chosen with `family=`:

- `goal_reaching`: a goal on the unit circle around the start, success within 0.3 of
  the torso's xy, terminate on success, 300 steps;
- `direction`: linear direction reward r = ψ·v_xy + action_weight·‖a‖² with ψ a unit
  vector, 300 steps (no `achieved`, no success).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from envs.core import AT_LEAST_ONE, POSITIVE, BallGoalReaching, LinearReward

# mujoco through mjx_base, which picks the GL backend before mujoco's first import
from envs.mjx_base import Marker, MjxEnv, PhysicsSettings, brax_asset, mujoco, tracking_camera

MODEL_PATH = brax_asset("ant.xml")
# 4 Newton iterations, as the model's own <option>: with 2 (and 6 line-search steps) a
# state under full-torque bang-bang actions diverges to inf/NaN in about 1 episode of 70
# (docs/envs.md), which poisons a learner's replay buffer and normalisers.
SETTINGS = PhysicsSettings(
    timestep=0.01, frame_skip=5, iterations=4, ls_iterations=8, contacts=True
)
FAMILIES = ("goal_reaching", "direction")


def quadruped_xml() -> str:
    """The brax ant with its torso sphere colliding with the floor (in the shipped
    model only the feet do, so a flipped ant sinks through the ground)."""
    spec = mujoco.MjSpec.from_file(MODEL_PATH)
    spec.geom("torso_geom").contype = 1
    return spec.to_xml()


class Quadruped(MjxEnv):
    """Four-legged walker (free torso, eight actuated hinges).

    - start: torso at the origin, 0.75 m high; joints at rest plus U[−0.1, 0.1],
      velocities N(0, 0.1²);
    - action in [−1, 1]⁸ (the model's motor gears);
    - physics: dt 0.01 s × 5 substeps (0.05 s per env step), Euler, contacts with the
      floor, Newton solver 4 iterations / 8 line-search steps (fewer diverge under
      full-torque actions); `episode_length = 300`.

    Observation (29,): all positions (torso xyz and orientation, joints) and velocities,
    so xy and v_xy are observed. Features (2,): torso xy (`goal_reaching`) or torso
    v_xy averaged over the env step (`direction`).
    """

    # what envs.make accepts for each parameter, beyond its type
    PARAMETER_RANGES = {
        "family": FAMILIES,
        "goal_radius": POSITIVE,
        "margin": POSITIVE,
        "episode_length": AT_LEAST_ONE,
    }

    def __init__(
        self,
        family: str = "goal_reaching",
        goal_radius: float = 1.0,
        margin: float = 0.3,
        action_weight: float = -0.1,
        episode_length: int = 300,
        terminate_on_success: bool = True,
    ):
        if family not in FAMILIES:
            raise ValueError(f"family must be one of {', '.join(FAMILIES)}, got {family!r}")
        if goal_radius <= 0 or margin <= 0 or episode_length < 1:
            raise ValueError(
                f"goal_radius, margin and episode_length must be positive, got "
                f"{goal_radius}, {margin}, {episode_length}"
            )
        self.family_name = family
        if family == "goal_reaching":
            self.family = BallGoalReaching(
                center=jnp.zeros(2), r_low=goal_radius, r_high=goal_radius, margin=margin
            )
            self.terminate_on_success = terminate_on_success
        else:
            self.family = LinearReward(
                task_low=-jnp.ones(2),
                task_high=jnp.ones(2),
                action_weight=action_weight,
                unit_direction=True,
            )
            self.terminate_on_success = False
        self._init_physics(quadruped_xml(), SETTINGS)
        self._qpos0 = jnp.asarray(self.mj_model.qpos0, jnp.float32)
        self.observation_size = self.mj_model.nq + self.mj_model.nv
        self.action_size = self.mj_model.nu
        self.episode_length = episode_length

    def _reset_physics(self, key, task):
        del task
        position_key, velocity_key = jax.random.split(key)
        nq, nv = self.mj_model.nq, self.mj_model.nv
        joints = jax.random.uniform(position_key, (nq - 7,), minval=-0.1, maxval=0.1)
        qpos = self._qpos0.at[7:].add(joints)
        qvel = 0.1 * jax.random.normal(velocity_key, (nv,))
        data = self.kinematics(qpos, qvel)
        features = qpos[:2] if self.family_name == "goal_reaching" else qvel[:2]
        return self.physics_of(data), jnp.concatenate([qpos, qvel]), features

    def _step_physics(self, physics, action, key):
        del key
        data = self.simulate(physics, jnp.clip(action, -1.0, 1.0))
        if self.family_name == "goal_reaching":
            features = data.qpos[:2]
        else:
            features = (data.qpos[:2] - physics.qpos[:2]) / self.settings.control_dt
        return self.physics_of(data), jnp.concatenate([data.qpos, data.qvel]), features

    def _camera(self, data):
        camera = tracking_camera(self.mj_model, "torso", distance=5.0, elevation=-45.0)
        return camera

    def _markers(self, task):
        if self.family_name != "goal_reaching":
            return []
        return [Marker(pos=(task[0], task[1], 0.05), radius=self.family.margin)]
