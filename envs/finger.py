"""Finger turning a knob (HIPI App. C): a 2-link planar finger pushes a hinged knob until
the knob's tip reaches a goal on its circle; sparse −1/0 reward within 0.01, terminate
on success. MuJoCo MJX physics on a model written here.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from envs.core import AT_LEAST_ONE, POSITIVE, BallGoalReaching
from envs.mjx_base import Marker, MjxEnv, PhysicsSettings

KNOB_CENTER = (0.1, 0.0)
KNOB_RADIUS = 0.12
# In the horizontal plane: a finger hinged at (-0.2, 0) with links of 0.17 and 0.16 m,
# and a knob hinged at (0.1, 0) whose arm ends in a tip 0.12 m from its axle. Only the
# finger's links touch the knob (contype/conaffinity); nothing else collides.
FINGER_XML = """
<mujoco model="finger_knob">
  <compiler angle="radian" inertiafromgeom="true"/>
  <option gravity="0 0 0"/>
  <default>
    <joint type="hinge" axis="0 0 1"/>
    <geom contype="0" conaffinity="0" friction="0.7 0.005 0.0001"/>
    <motor gear="{gear}" ctrlrange="-1 1" ctrllimited="true"/>
  </default>
  <worldbody>
    <light pos="0 0 1.5" dir="0 0 -1" diffuse="0.8 0.8 0.8"/>
    <geom name="table" type="plane" pos="0 0 -0.05" size="0.5 0.5 0.01" rgba="0.9 0.9 0.85 1"/>
    <body name="proximal" pos="-0.2 0 0">
      <joint name="proximal" damping="1" armature="0.05"/>
      <geom type="capsule" fromto="0 0 0 0.17 0 0" size="0.018" contype="1"
            rgba="0.3 0.5 0.8 1"/>
      <body name="distal" pos="0.17 0 0">
        <joint name="distal" damping="1" armature="0.05"/>
        <geom type="capsule" fromto="0 0 0 0.16 0 0" size="0.015" contype="1"
              rgba="0.3 0.5 0.8 1"/>
        <site name="fingertip" pos="0.16 0 0" size="0.01"/>
      </body>
    </body>
    <body name="knob" pos="{cx} {cy} 0">
      <joint name="knob" damping="0.02" armature="0.002"/>
      <geom type="cylinder" size="0.03 0.01" conaffinity="1" rgba="0.6 0.6 0.6 1"/>
      <geom type="capsule" fromto="0 0 0 {r} 0 0" size="0.02" conaffinity="1"
            rgba="0.6 0.6 0.6 1"/>
      <site name="knob_tip" pos="{r} 0 0" size="0.012" rgba="0.9 0.6 0.1 1"/>
    </body>
  </worldbody>
  <actuator>
    <motor joint="proximal"/>
    <motor joint="distal"/>
  </actuator>
</mujoco>
"""


class Finger(MjxEnv):
    """Two-link finger (actuated) and a free-spinning knob (passive hinge, light damping).

    Settings (this project's choices):
    - goals uniform on the knob tip's circle (radius 0.12 around the axle), success
      when the knob tip is within `margin = 0.01`; terminate on success;
    - start: knob angle uniform in [−π, π); finger joints uniform in [−π/2, π/2) and
      [−π, π) (where they overlap the knob, soft contacts push it away), at rest;
    - action in [−1, 1]² sets the finger's joint torques (`gear` = 2 N·m);
    - physics: dt 0.005 s × 4 substeps (0.02 s per env step), Euler, contacts between
      finger and knob only, Newton solver 2 iterations / 6 line-search steps;
      `episode_length = 200`.

    Observation (13,): cos and sin of the three joint angles, joint velocities, knob tip
    xy, fingertip xy. Features (2,): knob tip xy.
    """

    # what envs.make accepts for each parameter, beyond its type
    PARAMETER_RANGES = {"margin": POSITIVE, "episode_length": AT_LEAST_ONE, "gear": POSITIVE}

    def __init__(
        self,
        margin: float = 0.01,
        episode_length: int = 200,
        terminate_on_success: bool = True,
        gear: float = 2.0,
    ):
        if margin <= 0 or episode_length < 1 or gear <= 0:
            raise ValueError(
                f"margin, episode_length and gear must be positive, got "
                f"{margin}, {episode_length}, {gear}"
            )
        self.family = BallGoalReaching(
            center=jnp.asarray(KNOB_CENTER), r_low=KNOB_RADIUS, r_high=KNOB_RADIUS, margin=margin
        )
        xml = FINGER_XML.format(gear=gear, cx=KNOB_CENTER[0], cy=KNOB_CENTER[1], r=KNOB_RADIUS)
        self._init_physics(
            xml,
            PhysicsSettings(
                timestep=0.005, frame_skip=4, iterations=2, ls_iterations=6, contacts=True
            ),
        )
        self.observation_size = 13
        self.action_size = 2
        self.episode_length = episode_length
        self.terminate_on_success = terminate_on_success

    @staticmethod
    def _observe(data):
        knob_tip, fingertip = data.site_xpos[1, :2], data.site_xpos[0, :2]
        angles = data.qpos
        obs = jnp.concatenate([jnp.cos(angles), jnp.sin(angles), data.qvel, knob_tip, fingertip])
        return obs, knob_tip

    def _reset_physics(self, key, task):
        del task
        low = jnp.array([-jnp.pi / 2, -jnp.pi, -jnp.pi])
        qpos = jax.random.uniform(key, (3,), minval=low, maxval=-low)
        data = self.kinematics(qpos, jnp.zeros(3))
        obs, features = self._observe(data)
        return self.physics_of(data), obs, features

    def _camera(self, data):
        del data
        import mujoco

        camera = mujoco.MjvCamera()
        camera.lookat[:] = (-0.02, 0.0, 0.0)
        camera.distance, camera.elevation, camera.azimuth = 0.9, -90.0, 90.0
        return camera

    def _markers(self, task):
        return [Marker(pos=(task[0], task[1], 0.0), radius=max(self.family.margin, 0.008))]
