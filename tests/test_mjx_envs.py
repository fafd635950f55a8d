"""Invariants of the MuJoCo MJX envs, per env and task family: finite jit/vmap
rollouts, one trace of the step, reward and success recomputed from features,
hand-placed states, auto-reset drawing fresh tasks, frames.

Every case compiles one `jit(vmap(reset))` and one `jit(vmap(step))`, shared by all
its tests through `batched`; hand-placed states go through the same batched step.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs.core import RenderError, has_achieved
from envs.mjx_base import MjxPhysics

NUM_ENVS = 8
NUM_STEPS = 200

CASES = {
    "reacher": dict(env_id="reacher", family="goal_reaching"),
    "reacher_goal_set": dict(env_id="reacher", family="goal_set"),
    "reacher_goal_margin": dict(env_id="reacher", family="goal_margin"),
}
FINITE_TASK_CASES = {"reacher_goal_set"}


@functools.cache
def make_env(case: str) -> envs.Env:
    kwargs = dict(CASES[case])
    return envs.make(kwargs.pop("env_id"), **kwargs)


@functools.cache
def batched(case: str):
    """jit(vmap(reset)), jit(vmap(step)) and a counter of Python calls to step."""
    env = make_env(case)
    traces = {"step": 0}

    def counted_step(state, action):
        traces["step"] += 1
        return env.step(state, action)

    return jax.jit(jax.vmap(env.reset)), jax.jit(jax.vmap(counted_step)), traces


@functools.cache
def rollout(case: str, seed: int = 0) -> dict[str, np.ndarray]:
    """NUM_STEPS uniform random steps of NUM_ENVS envs: (T, N, ...) arrays of the task
    before each step, the action, and the step's outputs (after auto-reset)."""
    env = make_env(case)
    reset, step, _ = batched(case)
    rng = np.random.default_rng(seed)
    state = reset(jax.random.split(jax.random.key(seed), NUM_ENVS))
    records = []
    for _ in range(NUM_STEPS):
        action = rng.uniform(-1.0, 1.0, (NUM_ENVS, env.action_size)).astype(np.float32)
        after = step(state, action)
        records.append(
            dict(
                task_before=state.task,
                t_before=state.t,
                action=action,
                obs=after.obs,
                next_obs=after.next_obs,
                task=after.task,
                features=after.features,
                reward=after.reward,
                terminated=after.terminated,
                truncated=after.truncated,
                success=after.success,
                t=after.t,
                qpos=after.physics.qpos,
                qvel=after.physics.qvel,
            )
        )
        state = after
    records = jax.device_get(records)
    return {name: np.stack([record[name] for record in records]) for name in records[0]}


def step_placed(case: str, qpos, task, action=None):
    """One batched step from hand-placed positions (N, nq) at rest with tasks (N, D)."""
    env = make_env(case)
    reset, step, _ = batched(case)
    qpos = jnp.asarray(qpos, jnp.float32)
    n = qpos.shape[0]
    state = reset(jax.random.split(jax.random.key(99), n))
    state = state.replace(
        physics=MjxPhysics(qpos=qpos, qvel=jnp.zeros((n, env.mj_model.nv), jnp.float32)),
        task=jnp.asarray(task, jnp.float32),
        t=jnp.zeros(n, jnp.int32),
    )
    if action is None:
        action = jnp.zeros((n, env.action_size), jnp.float32)
    return jax.device_get(step(state, action))


# --- every env and family -----------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_rollout_is_finite(case):
    r = rollout(case)
    for name in ("obs", "next_obs", "features", "reward", "task", "qpos", "qvel"):
        assert np.all(np.isfinite(r[name])), name
    env = make_env(case)
    assert r["obs"].shape == (NUM_STEPS, NUM_ENVS, env.observation_size)
    assert r["task"].shape == (NUM_STEPS, NUM_ENVS, env.family.task_dim)


@pytest.mark.parametrize("case", CASES)
def test_jitted_vmapped_step_traces_once(case):
    _, _, traces = batched(case)
    rollout(case, seed=0)
    rollout(case, seed=1)
    assert traces["step"] == 1


@pytest.mark.parametrize("case", CASES)
def test_recomputed_reward_and_success_match_env(case):
    env, r = make_env(case), rollout(case)
    flat = {k: v.reshape(NUM_STEPS * NUM_ENVS, *v.shape[2:]) for k, v in r.items()}
    reward = jax.vmap(env.family.reward)(flat["features"], flat["action"], flat["task_before"])
    success = jax.vmap(env.family.success)(flat["features"], flat["task_before"])
    np.testing.assert_array_equal(np.asarray(reward), flat["reward"])
    np.testing.assert_array_equal(np.asarray(success), flat["success"])
    if has_achieved(env.family):  # the achieved task of a state is solved by it
        achieved = jax.vmap(env.family.achieved)(flat["features"])
        assert np.all(np.asarray(jax.vmap(env.family.success)(flat["features"], achieved)))


@pytest.mark.parametrize("case", CASES)
def test_terminated_and_truncated_follow_the_clock(case):
    env, r = make_env(case), rollout(case)
    terminated, truncated = r["terminated"], r["truncated"]
    assert not np.any(terminated & truncated)
    np.testing.assert_array_equal(terminated, r["success"] & env.terminate_on_success)
    clock = r["t_before"] + 1
    np.testing.assert_array_equal(truncated, (clock >= env.episode_length) & ~terminated)
    np.testing.assert_array_equal(r["t"], np.where(terminated | truncated, 0, clock))


@pytest.mark.parametrize("case", CASES)
def test_auto_reset_draws_a_fresh_task(case):
    env, r = make_env(case), rollout(case)
    done = r["terminated"] | r["truncated"]
    assert done.sum(axis=0).min() >= 2  # every env resets at least twice
    if case in FINITE_TASK_CASES:
        tasks = r["task"][done]
        members = np.asarray(env.family.tasks)
        assert all(np.any(np.all(members == task, axis=-1)) for task in tasks)
        # 32 equally likely goals: many distinct ones over the resets of all envs.
        assert len(np.unique(tasks, axis=0)) >= min(10, len(tasks) // 3)
        return
    changed = np.any(r["task"] != r["task_before"], axis=-1)
    np.testing.assert_array_equal(changed, done)
    for env_index in range(NUM_ENVS):
        env_done = done[:, env_index]
        first_task = r["task_before"][:1, env_index]
        tasks = np.concatenate([first_task, r["task"][env_done, env_index]])
        assert len(np.unique(tasks, axis=0)) == 1 + env_done.sum()


@pytest.mark.parametrize("case", CASES)
def test_two_seeds_differ_and_one_seed_repeats(case):
    first, other = rollout(case, seed=0), rollout(case, seed=1)
    again = rollout.__wrapped__(case, seed=0)
    for name in ("obs", "task", "reward", "features"):
        np.testing.assert_array_equal(first[name], again[name])
    assert not np.array_equal(first["obs"], other["obs"])


@pytest.mark.parametrize("case", CASES)
def test_render_draws_frames_of_one_episode(case):
    env, r = make_env(case), rollout(case)
    length = 5
    states = envs.EnvState(
        obs=r["obs"][:length, 0],
        task=r["task"][:length, 0],
        next_obs=r["next_obs"][:length, 0],
        features=r["features"][:length, 0],
        reward=r["reward"][:length, 0],
        terminated=r["terminated"][:length, 0],
        truncated=r["truncated"][:length, 0],
        success=r["success"][:length, 0],
        t=r["t"][:length, 0],
        key=np.zeros((length, 2), np.uint32),
        physics=MjxPhysics(qpos=r["qpos"][:length, 0], qvel=r["qvel"][:length, 0]),
    )
    try:
        frames = env.render(states, width=64, height=48)
    except RenderError as error:
        pytest.skip(str(error))
    assert frames.shape == (length, 48, 64, 3) and frames.dtype == np.uint8
    assert frames.std() > 0  # something is drawn
    assert not np.array_equal(frames[0], frames[-1])  # the arm moved


# --- reacher -------------------------------------------------------------------------


def reacher_fingertip(qpos: np.ndarray) -> np.ndarray:
    """Forward kinematics of the two links (0.1 m, then 0.11 m to the fingertip)."""
    shoulder, elbow = qpos[..., 0], qpos[..., 1]
    x = 0.1 * np.cos(shoulder) + 0.11 * np.cos(shoulder + elbow)
    y = 0.1 * np.sin(shoulder) + 0.11 * np.sin(shoulder + elbow)
    return np.stack([x, y], axis=-1)


@pytest.mark.parametrize("case", ["reacher", "reacher_goal_set", "reacher_goal_margin"])
def test_reacher_fingertip_features_follow_forward_kinematics(case):
    r = rollout(case)
    np.testing.assert_array_equal(r["features"], r["next_obs"][..., 6:8])
    kept = ~(r["terminated"] | r["truncated"])  # physics after a reset is the new episode's
    np.testing.assert_allclose(r["features"][kept], reacher_fingertip(r["qpos"][kept]), atol=2e-6)


def test_reacher_fingertip_on_goal_succeeds_and_far_fails():
    case = "reacher"
    env = make_env(case)
    qpos = np.random.default_rng(3).uniform(-np.pi, np.pi, (NUM_ENVS, 2))
    tip = reacher_fingertip(qpos)
    on = step_placed(case, qpos, tip)
    assert np.all(on.success) and np.all(on.reward == 0.0) and np.all(on.terminated)
    np.testing.assert_allclose(on.features, tip, atol=2e-6)  # the arm at rest stays put
    offset = np.array([1.5 * env.family.margin, 0.0])
    near = step_placed(case, qpos, tip + offset)
    assert not np.any(near.success) and np.all(near.reward == -1.0)
    assert not np.any(near.terminated)
    far = step_placed(case, qpos, -tip)
    assert not np.any(far.success) and np.all(far.reward == -1.0)


def test_reacher_goal_margin_success_depends_on_the_commanded_margin():
    case = "reacher_goal_margin"
    qpos = np.random.default_rng(4).uniform(-np.pi, np.pi, (NUM_ENVS, 2))
    goal = reacher_fingertip(qpos) + np.array([0.05, 0.0])  # 5 cm from the fingertip
    wide = step_placed(case, qpos, np.concatenate([goal, np.full((NUM_ENVS, 1), 0.06)], -1))
    narrow = step_placed(case, qpos, np.concatenate([goal, np.full((NUM_ENVS, 1), 0.04)], -1))
    assert np.all(wide.success) and np.all(wide.reward == 0.0)
    assert not np.any(narrow.success) and np.all(narrow.reward == -1.0)


def test_reacher_goal_set_holds_32_reachable_goals_and_rewards_its_members():
    case = "reacher_goal_set"
    env = make_env(case)
    goals = np.asarray(env.family.tasks)
    assert goals.shape == (32, 2) and len(np.unique(goals, axis=0)) == 32
    radius = np.linalg.norm(goals, axis=-1)
    assert np.all((radius >= 0.02 - 1e-6) & (radius <= 0.2 + 1e-6))
    assert not has_achieved(env.family)
    qpos = np.random.default_rng(5).uniform(-np.pi, np.pi, (NUM_ENVS, 2))
    on = step_placed(case, qpos, reacher_fingertip(qpos))
    assert np.all(on.success)


def test_reacher_sparse_margin_is_a_kwarg():
    family = envs.make("reacher", margin=0.003).family
    goal = jnp.array([0.1, 0.05])
    assert family.success(goal + jnp.array([0.0029, 0.0]), goal)
    assert not family.success(goal + jnp.array([0.0031, 0.0]), goal)


def test_reacher_goals_lie_in_the_reachable_annulus():
    for case in ("reacher", "reacher_goal_margin"):
        tasks = rollout(case)["task"].reshape(-1, make_env(case).family.task_dim)
        radius = np.linalg.norm(tasks[:, :2], axis=-1)
        assert np.all((radius >= 0.02 - 1e-6) & (radius <= 0.2 + 1e-6))
    margins = rollout("reacher_goal_margin")["task"][..., 2]
    assert np.all((margins >= 0.0) & (margins <= 0.1)) and margins.std() > 0.02


def test_reacher_rejects_unknown_family():
    with pytest.raises(ValueError, match="family must be one of"):
        envs.make("reacher", family="nope")
