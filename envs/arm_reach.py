"""Arm reach: a 3-joint arm moves its end effector to a goal in 3-D, standing in for the
Sawyer/Fetch reach tasks of HIPI and Hindsight EM (App. C), simulated with MuJoCo MJX.
Two task families, chosen with `family=`:

- `goal_reaching`: a goal g in 3-D, sparse −1/0 reward within `margin` (0.05 by
  default, the Fetch reach threshold);
- `goal_margin`: ψ = (g, m) with m ~ U[0, 0.1], success within m.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from envs.core import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, BallGoalReaching, GoalMargin
from envs.mjx_base import Marker, MjxEnv, PhysicsSettings

SHOULDER_HEIGHT = 0.5
# A pedestal, a turret turning about z, an upper arm and a forearm pitching about y
# (0.3 m each). Gravity is off (a gravity-compensated arm) and each joint's armature
# dominates its inertia, so 0.1·q̈ ≈ gear·a − q̇: the action sets joint speeds.
ARM_XML = """
<mujoco model="reach_arm">
  <compiler angle="radian" inertiafromgeom="true"/>
  <option gravity="0 0 0"/>
  <default>
    <joint type="hinge" damping="1" armature="0.1"/>
    <geom contype="0" conaffinity="0" rgba="0.55 0.6 0.65 1"/>
    <motor gear="{gear}" ctrlrange="-1 1" ctrllimited="true"/>
  </default>
  <worldbody>
    <light pos="0.5 -0.5 2" dir="-0.3 0.3 -1" diffuse="0.8 0.8 0.8"/>
    <geom name="floor" type="plane" size="1 1 0.01" rgba="0.85 0.85 0.8 1"/>
    <geom name="pedestal" type="cylinder" fromto="0 0 0 0 0 {height}" size="0.05"/>
    <body name="turret" pos="0 0 {height}">
      <joint name="yaw" axis="0 0 1"/>
      <geom type="sphere" size="0.05"/>
      <body name="upper_arm">
        <joint name="shoulder" axis="0 1 0"/>
        <geom type="capsule" fromto="0 0 0 0.3 0 0" size="0.03" rgba="0.9 0.5 0.2 1"/>
        <body name="forearm" pos="0.3 0 0">
          <joint name="elbow" axis="0 1 0"/>
          <geom type="capsule" fromto="0 0 0 0.3 0 0" size="0.025" rgba="0.9 0.5 0.2 1"/>
          <site name="end_effector" pos="0.3 0 0" size="0.02" rgba="0.1 0.1 0.1 1"/>
        </body>
      </body>
    </body>
  </worldbody>
  <actuator>
    <motor joint="yaw"/>
    <motor joint="shoulder"/>
    <motor joint="elbow"/>
  </actuator>
</mujoco>
"""
FAMILIES = ("goal_reaching", "goal_margin")


class ArmReach(MjxEnv):
    """3-joint arm (yaw, shoulder pitch, elbow pitch); the end effector must reach g.

    Settings (this project's choices):
    - links 0.3 m and 0.3 m from a shoulder 0.5 m above the floor, joints unlimited
      and links not colliding, so the end effector reaches the ball of radius 0.6;
    - goals uniform (by volume) in the shell 0.1 <= |g − shoulder| <= 0.5;
    - start: joint angles uniform in [−π, π), at rest;
    - action in [−1, 1]³ sets the joint torques (`gear` = 3 N·m);
    - physics: dt 0.01 s × 2 substeps (0.02 s per env step), Euler, no gravity, no
      contacts or constraints; `episode_length = 50`; terminate on success.

    Observation (12,): cos and sin of the joint angles, joint velocities, end effector
    xyz. Features (3,): end effector xyz.
    """

    # what envs.make accepts for each parameter, beyond its type
    PARAMETER_RANGES = {
        "family": FAMILIES,
        "margin": POSITIVE,
        "margin_low": NON_NEGATIVE,
        "margin_high": NON_NEGATIVE,
        "episode_length": AT_LEAST_ONE,
        "gear": POSITIVE,
    }

    def __init__(
        self,
        family: str = "goal_reaching",
        margin: float = 0.05,
        margin_low: float = 0.0,
        margin_high: float = 0.1,
        episode_length: int = 50,
        terminate_on_success: bool = True,
        gear: float = 3.0,
    ):
        if family not in FAMILIES:
            raise ValueError(f"family must be one of {', '.join(FAMILIES)}, got {family!r}")
        if margin <= 0 or episode_length < 1 or gear <= 0:
            raise ValueError(
                f"margin, episode_length and gear must be positive, got "
                f"{margin}, {episode_length}, {gear}"
            )
        if not 0 <= margin_low <= margin_high:
            raise ValueError(
                f"need 0 <= margin_low <= margin_high, got {margin_low}, {margin_high}"
            )
        self.family_name = family
        goals = BallGoalReaching(
            center=jnp.array([0.0, 0.0, SHOULDER_HEIGHT]), r_low=0.1, r_high=0.5, margin=margin
        )
        if family == "goal_reaching":
            self.family = goals
        else:
            self.family = GoalMargin(
                goals=goals,
                margin_low=margin_low,
                margin_high=margin_high,
                achieved_margin=0.5 * (margin_low + margin_high),
            )
        self._init_physics(
            ARM_XML.format(gear=gear, height=SHOULDER_HEIGHT),
            PhysicsSettings(timestep=0.01, frame_skip=2, iterations=1, ls_iterations=1),
        )
        self.observation_size = 12
        self.action_size = 3
        self.episode_length = episode_length
        self.terminate_on_success = terminate_on_success

    @staticmethod
    def _observe(data):
        angles, end_effector = data.qpos, data.site_xpos[0]
        obs = jnp.concatenate([jnp.cos(angles), jnp.sin(angles), data.qvel, end_effector])
        return obs, end_effector

    def _reset_physics(self, key, task):
        del task
        angles = jax.random.uniform(key, (3,), minval=-jnp.pi, maxval=jnp.pi)
        data = self.kinematics(angles, jnp.zeros(3))
        obs, features = self._observe(data)
        return self.physics_of(data), obs, features

    def _camera(self, data):
        del data
        import mujoco

        camera = mujoco.MjvCamera()
        camera.lookat[:] = (0.0, 0.0, SHOULDER_HEIGHT)
        camera.distance, camera.elevation, camera.azimuth = 1.8, -25.0, 135.0
        return camera

    def _markers(self, task):
        margin = task[3] if self.family_name == "goal_margin" else self.family.margin
        return [Marker(pos=tuple(task[:3]), radius=max(float(margin), 0.01))]
