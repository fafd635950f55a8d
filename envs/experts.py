"""Scripted experts: policies that solve an env's commanded task without learning, so
demonstration datasets (and the tests that need them) cost no RL training.

An expert is a `policy(obs (N, obs_dim), task (N, task_dim), key) -> actions (N, act)`,
the signature `common.collect` and `common.evaluate` roll out. `make_expert(env_id, env,
noise)` builds the one for an env id; `EXPERTS` lists the ids that have one.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np


def pointnav_expert(env, noise: float = 0.1) -> Callable:
    """Point navigation (continuous goals or a goal set): the largest step straight
    towards the goal, plus Gaussian noise of std `noise` on every action dimension,
    clipped to the action box [-1, 1]."""

    def policy(obs, task, key):
        toward = jnp.clip((task - obs) / env.max_step, -1.0, 1.0)
        return jnp.clip(toward + noise * jax.random.normal(key, toward.shape), -1.0, 1.0)

    return policy


def four_rooms_expert(env, noise: float = 0.1) -> Callable:
    """FourRooms: follow the shortest path of cells to the goal's cell
    (`four_rooms.distance_fields`), aiming at the centre of the neighbouring cell
    closest to the goal, and at the goal itself once within one cell of it; plus
    Gaussian noise of std `noise` (on top of the env's own action noise), clipped to
    [-1, 1]. With the env's defaults (action noise 1.0, margin 0.3) this policy
    succeeds in about 60% of episodes: the noise, not the route, limits the task."""
    from envs.four_rooms import distance_fields

    fields = jnp.asarray(distance_fields(np.asarray(env.walls)))  # (H, W, H, W)
    far = env.height * env.width
    fields = jnp.where(fields < 0, far, fields)
    last = jnp.asarray([env.height - 1, env.width - 1])
    offsets = jnp.asarray([(i, j) for i in (-1, 0, 1) for j in (-1, 0, 1)])

    def act(obs, task):
        cell = jnp.clip(jnp.floor(obs).astype(jnp.int32), 0, last)
        goal = jnp.clip(jnp.floor(task).astype(jnp.int32), 0, last)
        around = jnp.clip(cell + offsets, 0, last)  # (9, 2), the cell itself included
        to_goal = fields[goal[0], goal[1], around[:, 0], around[:, 1]]
        waypoint = around[jnp.argmin(to_goal)] + 0.5
        near = jnp.all(cell == goal) | (jnp.linalg.norm(task - obs) < 1.0)
        return jnp.clip(jnp.where(near, task, waypoint) - obs, -1.0, 1.0)

    def policy(obs, task, key):
        toward = jax.vmap(act)(obs, task)
        return jnp.clip(toward + noise * jax.random.normal(key, toward.shape), -1.0, 1.0)

    return policy


def quadruped_expert(
    env,
    noise: float = 0.1,
    stroke: float = 0.3,
    gain: float = 0.3,
    damping: float = 0.02,
    switch: float = 0.8,
) -> Callable:
    """Quadruped, `direction` family: a trot steered towards the commanded direction ψ.

    A hip turns its leg about the vertical, so a foot on the ground pushes the torso
    along the tangent of the hip's circle: t₁ = (−1, 1)/√2 for the legs at 45° and 225°
    (pair A, turning in opposite senses), t₂ = (−1, −1)/√2 for those at 135° and 315°
    (pair B). With ψ in the torso's frame written ψ = a·t₁ + b·t₂, pair A sweeps its
    hips by ±`stroke`·a and pair B by ±`stroke`·b (a, b scaled so the larger is 1), in
    antiphase: the pair whose stroke moves the torso along ψ has its feet down (ankles
    at 1.0 rad), the other lifts them (ankles at their 0.52 rad limit). The phase is a
    relay on the leading pair's stroke p ∈ [−1, 1] read from the hip angles: it turns
    round when |p| passes `switch` and otherwise follows the sign of ṗ, so the policy
    needs no clock. Joint targets are tracked by PD torques
    `gain`·(q* − q) − `damping`·q̇, plus Gaussian noise of std `noise`, clipped to
    [−1, 1]. With these settings (tuned on 64 episodes, the physics of
    `envs/quadruped.py`) the torso moves at about 0.6 m/s along ψ and stays upright.
    """
    if getattr(env, "family_name", None) != "direction":
        raise ValueError("the quadruped expert walks in a direction: use family=direction")
    model = env.mj_model
    joints = model.actuator_trnid[:, 0]  # (8,) joint driven by each actuator
    qpos_index = jnp.asarray(model.jnt_qposadr[joints])
    qvel_index = jnp.asarray(model.nq + model.jnt_dofadr[joints])
    names = [model.joint(int(j)).name for j in joints]  # hip_1, ankle_1, ..., per actuator
    leg = np.array([int(name.split("_")[1]) - 1 for name in names])  # 0..3
    is_hip = np.array([name.startswith("hip") for name in names])
    foot_down = np.sign(model.jnt_range[joints].mean(axis=1))  # ankle sign that lowers a foot
    # per leg: which pair it is in, and the sense its hip turns for that pair's stroke
    pair_b = jnp.asarray(leg % 2 == 1)
    sense = jnp.asarray(np.array([-1.0, 1.0, 1.0, -1.0])[leg])
    t1 = jnp.array([-1.0, 1.0]) / jnp.sqrt(2.0)
    t2 = jnp.array([-1.0, -1.0]) / jnp.sqrt(2.0)
    hip_of = {(int(lg), bool(h)): k for k, (lg, h) in enumerate(zip(leg, is_hip, strict=True))}
    hips = jnp.asarray([hip_of[i, True] for i in range(4)])  # actuator of each leg's hip

    def act(obs, task):
        w, x, y, z = obs[3], obs[4], obs[5], obs[6]  # torso orientation
        yaw = jnp.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))
        cos, sin = jnp.cos(yaw), jnp.sin(yaw)
        psi = jnp.array([cos * task[0] + sin * task[1], -sin * task[0] + cos * task[1]])
        a, b = psi @ t1, psi @ t2
        scale = jnp.maximum(jnp.abs(a), jnp.abs(b))
        a, b = a / scale, b / scale
        q, qd = obs[qpos_index], obs[qvel_index]  # (8,) per actuator
        hip_q, hip_qd = q[hips], qd[hips]  # (4,) per leg
        lead_a = jnp.abs(a) >= jnp.abs(b)
        extent = 2.0 * stroke * jnp.where(lead_a, a, -b)
        p = jnp.where(lead_a, hip_q[2] - hip_q[0], hip_q[3] - hip_q[1]) / extent
        p_dot = jnp.where(lead_a, hip_qd[2] - hip_qd[0], hip_qd[3] - hip_qd[1]) / extent
        d = jnp.where(
            p > switch, -1.0, jnp.where(p < -switch, 1.0, jnp.where(p_dot >= 0, 1.0, -1.0))
        )
        amplitude = jnp.where(pair_b, b, a)  # (8,)
        hip_target = stroke * sense * amplitude * d
        lifted = jnp.where(pair_b, d > 0, d < 0)
        ankle_target = foot_down * jnp.where(lifted, 0.52, 1.0)
        target = jnp.where(jnp.asarray(is_hip), hip_target, ankle_target)
        return jnp.clip(gain * (target - q) - damping * qd, -1.0, 1.0)

    def policy(obs, task, key):
        action = jax.vmap(act)(obs, task)
        return jnp.clip(action + noise * jax.random.normal(key, action.shape), -1.0, 1.0)

    return policy


EXPERTS = {
    "pointnav": pointnav_expert,
    "four_rooms": four_rooms_expert,
    "quadruped": quadruped_expert,
}


def make_expert(env_id: str, env, noise: float = 0.1) -> Callable:
    """The scripted expert of `env_id`; ValueError naming the ids that have one."""
    if env_id not in EXPERTS:
        raise ValueError(
            f"no scripted expert for {env_id!r}; experts exist for: {', '.join(EXPERTS)}"
        )
    if noise < 0:
        raise ValueError(f"expert noise must not be negative, got {noise}")
    return EXPERTS[env_id](env, noise)
