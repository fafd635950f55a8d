"""Reacher: a 2-link planar arm moves its fingertip to a goal (HIPI App. C; Hindsight EM
App. C), simulated with MuJoCo MJX. Three task families, chosen with `family=`:

- `goal_reaching`: a goal g in the plane, sparse −1/0 reward within `margin`
  (0.01 by default; 0.003 is the extremely sparse variant);
- `goal_set`: a fixed set of `num_goals = 32` goals, same reward (no `achieved`);
- `goal_margin`: ψ = (g, m) with m ~ U[0, 0.1], success within m.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from envs.core import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, BallGoalReaching, GoalMargin, GoalSet
from envs.mjx_base import Marker, MjxEnv, PhysicsSettings

# Two capsule links of 0.1 and 0.11 m (to the fingertip) hinged about z. The armature
# dominates the inertia, so a joint obeys roughly 0.1·q̈ = gear·a − q̇: the joint speed
# follows the action within ~5 env steps and saturates at `gear` rad/s.
REACHER_XML = """
<mujoco model="planar_arm">
  <compiler angle="radian" inertiafromgeom="true"/>
  <default>
    <joint type="hinge" axis="0 0 1" damping="1" armature="0.1"/>
    <geom contype="0" conaffinity="0" rgba="0.3 0.45 0.7 1"/>
    <motor gear="{gear}" ctrlrange="-1 1" ctrllimited="true"/>
  </default>
  <worldbody>
    <light pos="0 0 1.5" dir="0 0 -1" diffuse="0.7 0.7 0.7"/>
    <geom name="table" type="plane" size="0.3 0.3 0.01" rgba="0.92 0.92 0.88 1"/>
    <body name="upper_arm" pos="0 0 0.01">
      <joint name="shoulder"/>
      <geom type="capsule" fromto="0 0 0 0.1 0 0" size="0.01"/>
      <body name="forearm" pos="0.1 0 0">
        <joint name="elbow"/>
        <geom type="capsule" fromto="0 0 0 0.11 0 0" size="0.008"/>
        <site name="fingertip" pos="0.11 0 0" size="0.01" rgba="0.1 0.1 0.1 1"/>
      </body>
    </body>
  </worldbody>
  <actuator>
    <motor name="shoulder" joint="shoulder"/>
    <motor name="elbow" joint="elbow"/>
  </actuator>
</mujoco>
"""

REACH = 0.21  # fingertip distance from the shoulder when the arm is straight
FAMILIES = ("goal_reaching", "goal_set", "goal_margin")


class Reacher(MjxEnv):
    """Planar 2-link arm; the fingertip must reach the commanded goal.

    Settings (this project's choices, not the papers' published constants):
    - links 0.1 m and 0.11 m, joints unlimited (links do not collide), so the
      fingertip reaches the annulus 0.01 <= r <= 0.21 around the shoulder;
    - goals uniform (by area) in 0.02 <= r <= 0.2, inside that annulus: every
      goal is exactly reachable;
    - start: both joint angles uniform in [−π, π), at rest;
    - action in [−1, 1]² is the torque of each joint (`gear` = 5 N·m);
    - physics: dt 0.01 s, 2 substeps (0.02 s per env step), Euler, no contacts or
      constraints (nothing to solve); `episode_length = 50` (1 s);
    - terminate on success by default.

    Observation (8,): cos and sin of both joint angles, joint velocities, fingertip
    xy. Features (2,): fingertip xy. No goal-relative term is observed.
    """

    # what envs.make accepts for each parameter, beyond its type
    PARAMETER_RANGES = {
        "family": FAMILIES,
        "margin": POSITIVE,
        "num_goals": AT_LEAST_ONE,
        "goal_seed": NON_NEGATIVE,
        "margin_low": NON_NEGATIVE,
        "margin_high": NON_NEGATIVE,
        "episode_length": AT_LEAST_ONE,
        "gear": POSITIVE,
    }

    def __init__(
        self,
        family: str = "goal_reaching",
        margin: float = 0.01,
        num_goals: int = 32,
        goal_seed: int = 0,
        margin_low: float = 0.0,
        margin_high: float = 0.1,
        episode_length: int = 50,
        terminate_on_success: bool = True,
        gear: float = 5.0,
    ):
        if family not in FAMILIES:
            raise ValueError(f"family must be one of {', '.join(FAMILIES)}, got {family!r}")
        if margin <= 0 or episode_length < 1 or num_goals < 1 or gear <= 0:
            raise ValueError(
                f"margin, episode_length, num_goals and gear must be positive, got "
                f"{margin}, {episode_length}, {num_goals}, {gear}"
            )
        if not 0 <= margin_low <= margin_high:
            raise ValueError(
                f"need 0 <= margin_low <= margin_high, got {margin_low}, {margin_high}"
            )
        self.family_name = family
        goals = BallGoalReaching(
            center=jnp.zeros(2, jnp.float32), r_low=0.02, r_high=0.2, margin=margin
        )
        if family == "goal_reaching":
            self.family = goals
        elif family == "goal_set":  # drawn once from goal_seed
            points = goals.sample(jax.random.key(goal_seed), (num_goals,))
            self.family = GoalSet(goals=jnp.asarray(np.asarray(points)), margin=margin)
        else:
            self.family = GoalMargin(
                goals=goals,
                margin_low=margin_low,
                margin_high=margin_high,
                achieved_margin=0.5 * (margin_low + margin_high),
            )
        self._init_physics(
            REACHER_XML.format(gear=gear),
            PhysicsSettings(timestep=0.01, frame_skip=2, iterations=1, ls_iterations=1),
        )
        self.observation_size = 8
        self.action_size = 2
        self.episode_length = episode_length
        self.terminate_on_success = terminate_on_success

    @staticmethod
    def _observe(data):
        angles, fingertip = data.qpos, data.site_xpos[0, :2]
        obs = jnp.concatenate([jnp.cos(angles), jnp.sin(angles), data.qvel, fingertip])
        return obs, fingertip

    def _reset_physics(self, key, task):
        del task
        angles = jax.random.uniform(key, (2,), minval=-jnp.pi, maxval=jnp.pi)
        data = self.kinematics(angles, jnp.zeros(2))
        obs, features = self._observe(data)
        return self.physics_of(data), obs, features

    # --- frames -------------------------------------------------------------------

    def _camera(self, data):
        del data
        import mujoco

        camera = mujoco.MjvCamera()
        camera.lookat[:] = (0.0, 0.0, 0.0)
        camera.distance, camera.elevation, camera.azimuth = 0.6, -90.0, 90.0
        return camera

    def _markers(self, task):
        margin = task[2] if self.family_name == "goal_margin" else self.family.margin
        return [Marker(pos=(task[0], task[1], 0.01), radius=max(float(margin), 0.005))]
