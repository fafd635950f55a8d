"""Push: a gripper pushes a box across a table to a goal, the task of gymnasium-robotics'
FetchPush (goal = the box's 3-D position, success within 5 cm, sparse −1/0 reward,
50-step episodes), simulated with MuJoCo MJX.

The Fetch robot itself is not simulated: its 7-joint arm and meshes compile and run
far too slowly in MJX on a CPU (docs/envs.md). The gripper here is a body on three
slide joints driven by velocity servos, the way FetchPush's mocap moves its gripper
by a Cartesian displacement per step; its fingers are fixed (FetchPush blocks them).
Contacts exist only where the task needs them: box–table and fingers–box.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from envs.core import AT_LEAST_ONE, POSITIVE, GoalReaching
from envs.mjx_base import Marker, MjxEnv, PhysicsSettings

HALF = 0.025  # the box's half size: a 5 cm cube, resting with its centre 2.5 cm up
GRIPPER_START = (0.0, 0.0, 0.06)  # above the table's centre, fingertips 1 cm above it
# Contact bits: the box collides with the table and with the fingers, nothing else.
#   table: contype 0, conaffinity 1; fingers: contype 0, conaffinity 1; box: both 1.
PUSH_XML = """
<mujoco model="push">
  <compiler angle="radian" inertiafromgeom="true"/>
  <default>
    <geom contype="0" conaffinity="0" friction="1 0.005 0.0001" rgba="0.6 0.6 0.65 1"/>
    <joint type="slide" limited="true" armature="{armature}" damping="0"/>
    <velocity kv="{kv}" ctrlrange="-1 1" ctrllimited="true"/>
  </default>
  <worldbody>
    <light pos="0 0 1.5" dir="0 0 -1" diffuse="0.8 0.8 0.8"/>
    <geom name="table" type="plane" size="0.4 0.4 0.01" conaffinity="1" rgba="0.8 0.75 0.6 1"/>
    <body name="gripper" pos="{start}">
      <joint name="x" axis="1 0 0" range="-0.3 0.3"/>
      <joint name="y" axis="0 1 0" range="-0.3 0.3"/>
      <joint name="z" axis="0 0 1" range="-0.04 0.2"/>
      <geom name="palm" type="box" size="0.015 0.035 0.008" pos="0 0 0.033" mass="0.005"/>
      <geom name="left" type="box" size="0.012 0.006 0.025" pos="0 0.028 0" mass="0.0025"
            conaffinity="1"/>
      <geom name="right" type="box" size="0.012 0.006 0.025" pos="0 -0.028 0" mass="0.0025"
            conaffinity="1"/>
      <site name="grip" pos="0 0 0" size="0.005"/>
    </body>
    <body name="box" pos="0.1 0 {half}">
      <freejoint/>
      <geom name="box" type="box" size="{half} {half} {half}" mass="0.2" contype="1"
            conaffinity="1" rgba="0.2 0.4 0.9 1"/>
    </body>
  </worldbody>
  <actuator>
    <velocity joint="x"/>
    <velocity joint="y"/>
    <velocity joint="z"/>
  </actuator>
</mujoco>
"""
PHYSICS = PhysicsSettings(timestep=0.01, frame_skip=2, iterations=4, ls_iterations=8, contacts=True)


class Push(MjxEnv):
    """A gripper on slide joints pushes a 5 cm box on a table to a goal on the table.

    Settings (FetchPush's task; the gripper is this project's):
    - the box starts uniformly within ±`obj_range` (0.15 m) of the point below the
      gripper in x and y, at least 0.1 m from it, resting on the table;
    - the goal: uniform within ±`target_range` (0.15 m) of that point, on the table
      (z = 0.025, the box's resting height); success when the box's centre is within
      `margin` (0.05 m) of it, reward 0 then, −1 otherwise; `episode_length = 50`,
      no termination on success (as Fetch);
    - action in [−1, 1]³: the gripper's target velocity in m/s, tracked by velocity
      servos (kv = 25 N·s/m) on slide joints whose armature (0.5 kg) carries the
      inertia, so gravity on the gripper's few grams makes no sag; workspace
      x, y ∈ [−0.3, 0.3] m, fingertips from 0.5 cm below the table top (a joint
      limit: fingers and table do not collide) to 23.5 cm above it;
    - physics: dt 0.01 s × 2 substeps (0.02 s per env step), Euler, 4 solver and 8
      line-search iterations, contacts box–table and fingers–box only.

    Observation (24,): gripper xyz, box xyz, box − gripper, box orientation (the first
    two columns of its rotation matrix, 6), box linear and angular velocity, gripper
    velocity. Features (3,): the box's xyz, the achieved goal.
    """

    PARAMETER_RANGES = {
        "margin": POSITIVE,
        "obj_range": POSITIVE,
        "target_range": POSITIVE,
        "episode_length": AT_LEAST_ONE,
    }

    def __init__(
        self,
        margin: float = 0.05,
        obj_range: float = 0.15,
        target_range: float = 0.15,
        episode_length: int = 50,
        terminate_on_success: bool = False,
    ):
        if margin <= 0 or obj_range <= 0 or target_range <= 0 or episode_length < 1:
            raise ValueError(
                f"margin, obj_range, target_range and episode_length must be positive, got "
                f"{margin}, {obj_range}, {target_range}, {episode_length}"
            )
        if obj_range > 0.25 or target_range > 0.25:
            raise ValueError(
                f"obj_range and target_range must be at most 0.25 (the table's reach), got "
                f"{obj_range}, {target_range}"
            )
        self.obj_range = obj_range
        self.family = GoalReaching(
            goal_low=jnp.array([-target_range, -target_range, HALF]),
            goal_high=jnp.array([target_range, target_range, HALF]),
            margin=margin,
        )
        start = " ".join(str(v) for v in GRIPPER_START)
        self._init_physics(PUSH_XML.format(armature=0.5, kv=25.0, start=start, half=HALF), PHYSICS)
        self.observation_size = 24
        self.action_size = 3
        self.episode_length = episode_length
        self.terminate_on_success = terminate_on_success

    @staticmethod
    def _observe(data):
        grip = data.site_xpos[0]
        box = data.xpos[2]
        rotation = data.xmat[2].reshape(3, 3)[:, :2].reshape(-1)
        obs = jnp.concatenate(
            [grip, box, box - grip, rotation, data.qvel[3:6], data.qvel[6:9], data.qvel[:3]]
        )
        return obs, box

    def _reset_physics(self, key, task):
        del task

        def draw(key):
            return jax.random.uniform(key, (2,), minval=-self.obj_range, maxval=self.obj_range)

        # Fetch redraws until the object is 0.1 m from the gripper; a fixed number of
        # draws keeps this a pure function (the first far enough wins, else the last,
        # pushed out radially)
        candidates = jax.vmap(draw)(jax.random.split(key, 8))  # (8, 2)
        far = jnp.linalg.norm(candidates, axis=-1) >= 0.1
        xy = candidates[jnp.argmax(far)]
        xy = jnp.where(far.any(), xy, xy / jnp.maximum(jnp.linalg.norm(xy), 1e-6) * 0.1)
        qpos = jnp.concatenate([jnp.zeros(3), xy, jnp.array([HALF, 1.0, 0.0, 0.0, 0.0])])
        data = self.kinematics(qpos, jnp.zeros(9))
        obs, features = self._observe(data)
        return self.physics_of(data), obs, features

    def _camera(self, data):
        del data
        import mujoco

        camera = mujoco.MjvCamera()
        camera.lookat[:] = (0.0, 0.0, 0.0)
        camera.distance, camera.elevation, camera.azimuth = 0.9, -40.0, 135.0
        return camera

    def _markers(self, task):
        return [Marker(pos=tuple(task[:3]), radius=float(self.family.margin))]
