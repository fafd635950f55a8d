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
from envs.core import (
    BallGoalReaching,
    GoalMargin,
    LinearReward,
    RenderError,
    TargetVelocity,
    has_achieved,
)
from envs.mjx_base import MjxPhysics

NUM_ENVS = 8
NUM_STEPS = 200

CASES = {
    "reacher": dict(env_id="reacher", family="goal_reaching"),
    "reacher_goal_set": dict(env_id="reacher", family="goal_set"),
    "reacher_goal_margin": dict(env_id="reacher", family="goal_margin"),
    "arm_reach": dict(env_id="arm_reach", family="goal_reaching"),
    "arm_reach_goal_margin": dict(env_id="arm_reach", family="goal_margin"),
    "half_cheetah": dict(env_id="half_cheetah"),
    "walker": dict(env_id="walker"),
    # 60-step episodes so that 200 steps hold several resets (defaults: 300, finger 200).
    "quadruped": dict(env_id="quadruped", family="goal_reaching", episode_length=60),
    "quadruped_direction": dict(env_id="quadruped", family="direction", episode_length=60),
    "finger": dict(env_id="finger", episode_length=60),
}
FINITE_TASK_CASES = {"reacher_goal_set"}
# Continuous rewards: the env's jitted step and the recomputation round sums in a
# different order, so they agree to float32 rounding, not bit for bit.
DENSE_REWARD_CASES = {"half_cheetah", "walker", "quadruped_direction"}
# Features and the obs slice holding them are the same positions (of scale ~1 m), but
# XLA computes them in two fusions whose vectorization depends on the CPU (AVX-512 gave
# differences up to 3e-8): 1e-6 is about 8 float32 ulps at 1 m, and far below what a
# wrong site or obs slice would show (centimetres at least).
SAME_POSITION_TOL = dict(rtol=1e-6, atol=1e-6)
# Success is a distance (or speed error) compared with a margin. Computed by two programs,
# the two sides can round to opposite sides of the margin only within a few ulps of it;
# steps within 1e-5 of the margin (hundreds of float32 ulps at margins of 0.01 to 0.1 m)
# are left out of exact checks.
THRESHOLD_TOL = 1e-5


def threshold_gap(family, features, task) -> np.ndarray:
    """|distance - margin| of the success test of each (features, task) pair, in float64;
    +inf for families without a threshold (their success is a constant)."""
    features, task = np.asarray(features, np.float64), np.asarray(task, np.float64)
    if isinstance(family, GoalMargin):
        distance = np.linalg.norm(features - task[..., :-1], axis=-1)
        return np.abs(distance - task[..., -1])
    if isinstance(family, TargetVelocity):
        return np.abs(np.abs(features[..., 0] - task[..., 0]) - family.tolerance)
    if hasattr(family, "margin"):
        return np.abs(np.linalg.norm(features - task, axis=-1) - family.margin)
    return np.full(task.shape[:-1], np.inf)


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
                qpos_before=state.physics.qpos,
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
    """One batched step from hand-placed positions (N, nq), at rest, with tasks (N, D)."""
    env = make_env(case)
    reset, step, _ = batched(case)
    qpos = jnp.asarray(qpos, jnp.float32)
    n = qpos.shape[0]
    state = reset(jax.random.split(jax.random.key(99), n))
    zeros = jnp.zeros((n, env.mj_model.nv), jnp.float32)
    state = state.replace(
        physics=MjxPhysics(qpos=qpos, qvel=zeros, qacc_warmstart=zeros),
        task=jnp.asarray(task, jnp.float32),
        t=jnp.zeros(n, jnp.int32),
    )
    if action is None:
        action = jnp.zeros((n, env.action_size), jnp.float32)
    return jax.device_get(step(state, action))


# --- the families, against NumPy on random inputs -------------------------------------


@pytest.mark.parametrize(("dim", "r_low", "r_high"), [(2, 0.02, 0.2), (3, 0.1, 0.5), (2, 1.0, 1.0)])
def test_ball_goals_are_uniform_by_volume_in_their_shell(dim, r_low, r_high):
    center = np.arange(dim, dtype=np.float32)
    family = BallGoalReaching(center=jnp.asarray(center), r_low=r_low, r_high=r_high)
    goals = np.asarray(family.sample(jax.random.key(0), (20000,)))
    radius = np.linalg.norm(goals - center, axis=-1)
    assert np.all((radius >= r_low - 1e-5) & (radius <= r_high + 1e-5))
    if r_high > r_low:  # the volume fraction inside radius r is uniform in [0, 1]
        fraction = np.sort((radius**dim - r_low**dim) / (r_high**dim - r_low**dim))
        assert np.max(np.abs(fraction - np.linspace(0, 1, len(fraction)))) < 0.02
    directions = (goals - center) / radius[:, None]
    assert np.all(np.abs(directions.mean(0)) < 0.03)  # no preferred direction


def test_goal_margin_reward_success_and_achieved_match_numpy():
    rng = np.random.default_rng(0)
    family = GoalMargin(goals=BallGoalReaching(center=jnp.zeros(2), r_low=0.0, r_high=0.2))
    features = rng.uniform(-0.2, 0.2, (5000, 2)).astype(np.float32)
    tasks = np.asarray(family.sample(jax.random.key(1), (5000,)))
    assert np.all((tasks[:, 2] >= 0.0) & (tasks[:, 2] <= 0.1))
    solved = np.linalg.norm(features - tasks[:, :2], axis=-1) <= tasks[:, 2]
    assert 0 < solved.sum() < len(solved)
    success = jax.vmap(family.success)(features, tasks)
    reward = jax.vmap(family.reward)(features, np.zeros((5000, 2)), tasks)
    # NumPy and JAX may round a distance to opposite sides of its margin only near it.
    clear = threshold_gap(family, features, tasks) > THRESHOLD_TOL
    assert clear.mean() > 0.99
    np.testing.assert_array_equal(np.asarray(success)[clear], solved[clear])
    np.testing.assert_array_equal(np.asarray(reward)[clear], solved[clear] - 1.0)
    achieved = np.asarray(jax.vmap(family.achieved)(features))
    margin = np.full((5000, 1), 0.05, np.float32)
    np.testing.assert_array_equal(achieved, np.concatenate([features, margin], 1))


def test_target_velocity_and_linear_rewards_match_numpy():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(1000, 3)).astype(np.float32)
    actions = rng.uniform(-1, 1, (1000, 4)).astype(np.float32)
    control = (actions**2).sum(-1)
    speed = TargetVelocity()
    targets = np.asarray(speed.sample(jax.random.key(2), (1000,)))
    assert np.all((targets >= 0) & (targets <= 3)) and targets.std() > 0.5
    expected = -np.abs(features[:, 0] - targets[:, 0]) - 0.05 * control
    reward = jax.vmap(speed.reward)(features, actions, targets)
    np.testing.assert_allclose(np.asarray(reward), expected, rtol=1e-6, atol=1e-6)
    low, high = -jnp.ones(4), jnp.concatenate([jnp.ones(3), jnp.zeros(1)])
    weighted = LinearReward(task_low=low, task_high=high, action_in_task=True)
    psi = np.asarray(weighted.sample(jax.random.key(3), (1000,)))
    assert np.all((psi >= np.asarray(low)) & (psi <= np.asarray(high)))
    expected = (features * psi[:, :3]).sum(-1) + psi[:, 3] * control
    reward = jax.vmap(weighted.reward)(features, actions, psi)
    np.testing.assert_allclose(np.asarray(reward), expected, rtol=1e-5, atol=1e-5)
    direction = LinearReward(
        task_low=-jnp.ones(3), task_high=jnp.ones(3), action_weight=-0.1, unit_direction=True
    )
    psi = np.asarray(direction.sample(jax.random.key(4), (1000,)))
    np.testing.assert_allclose(np.linalg.norm(psi, axis=-1), 1.0, rtol=1e-5)
    expected = (features * psi).sum(-1) - 0.1 * control
    reward = jax.vmap(direction.reward)(features, actions, psi)
    np.testing.assert_allclose(np.asarray(reward), expected, rtol=1e-5, atol=1e-5)
    assert not np.any(np.asarray(jax.vmap(direction.success)(features, psi)))


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
    # Success (and a sparse reward) may differ only where the two programs' distances
    # straddle the margin, i.e. within a few ulps of it.
    clear = threshold_gap(env.family, flat["features"], flat["task_before"]) > THRESHOLD_TOL
    assert clear.mean() > 0.99
    if case in DENSE_REWARD_CASES:
        np.testing.assert_allclose(np.asarray(reward), flat["reward"], rtol=1e-6, atol=1e-6)
    else:  # 0 or -1, exactly, away from the margin
        np.testing.assert_array_equal(np.asarray(reward)[clear], flat["reward"][clear])
    np.testing.assert_array_equal(np.asarray(success)[clear], flat["success"][clear])
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
        physics=MjxPhysics(
            qpos=r["qpos"][:length, 0],
            qvel=r["qvel"][:length, 0],
            qacc_warmstart=np.zeros_like(r["qvel"][:length, 0]),
        ),
    )
    try:
        frames = env.render(states, width=64, height=48)
    except RenderError as error:
        pytest.skip(str(error))
    assert frames.shape == (length, 48, 64, 3) and frames.dtype == np.uint8
    assert frames.std() > 0  # something is drawn
    assert not np.array_equal(frames[0], frames[-1])  # the body moved


def kept(r) -> np.ndarray:
    """(T, N) steps after which the env did not reset (its physics is the reached state)."""
    return ~(r["terminated"] | r["truncated"])


def forward_velocity(r, dt: float) -> np.ndarray:
    """Root x displacement over the step / dt, NumPy reference, on `kept` steps."""
    return (r["qpos"][..., 0] - r["qpos_before"][..., 0])[kept(r)] / dt


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
    np.testing.assert_allclose(r["features"], r["next_obs"][..., 6:8], **SAME_POSITION_TOL)
    kept = ~(r["terminated"] | r["truncated"])  # physics after a reset is the new episode's
    np.testing.assert_allclose(r["features"][kept], reacher_fingertip(r["qpos"][kept]), atol=2e-6)


def reacher_joint_targets(goal: np.ndarray, elbow_now: np.ndarray) -> np.ndarray:
    """Inverse kinematics of the two links for goals (N, 2): the elbow branch nearest
    the current elbow angle."""
    radius2 = (goal**2).sum(-1)
    cos_elbow = np.clip((radius2 - 0.1**2 - 0.11**2) / (2 * 0.1 * 0.11), -1.0, 1.0)
    elbow = np.arccos(cos_elbow) * np.where(np.sin(elbow_now) >= 0, 1.0, -1.0)
    shoulder = np.arctan2(goal[:, 1], goal[:, 0]) - np.arctan2(
        0.11 * np.sin(elbow), 0.1 + 0.11 * np.cos(elbow)
    )
    return np.stack([shoulder, elbow], -1)


def test_reacher_goals_are_reached_within_an_episode_by_a_joint_controller():
    """Random starts and goals: a proportional controller towards the inverse-kinematics
    angles solves every one of them before the time limit (margin 0.01)."""
    case = "reacher"
    env = make_env(case)
    reset, step, _ = batched(case)
    state = reset(jax.random.split(jax.random.key(11), NUM_ENVS))
    solved = np.zeros(NUM_ENVS, bool)
    for _ in range(env.episode_length):
        qpos, task = np.asarray(state.physics.qpos), np.asarray(state.task)
        error = reacher_joint_targets(task, qpos[:, 1]) - qpos
        error = (error + np.pi) % (2 * np.pi) - np.pi  # wrapped to [-pi, pi)
        state = step(state, np.clip(3.0 * error, -1.0, 1.0).astype(np.float32))
        solved |= np.asarray(state.success)
        assert not np.any(np.asarray(state.truncated) & ~solved)
        if solved.all():
            break
    assert solved.all()


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
    assert envs.make("finger").episode_length == 200


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


# --- arm reach ------------------------------------------------------------------------


def arm_end_effector(qpos: np.ndarray) -> np.ndarray:
    """Forward kinematics: yaw about z, then two 0.3 m links pitching about y, from a
    shoulder 0.5 m above the floor."""
    yaw, shoulder, elbow = qpos[..., 0], qpos[..., 1], qpos[..., 2]
    reach = 0.3 * np.cos(shoulder) + 0.3 * np.cos(shoulder + elbow)
    height = 0.5 - 0.3 * np.sin(shoulder) - 0.3 * np.sin(shoulder + elbow)
    return np.stack([reach * np.cos(yaw), reach * np.sin(yaw), height], axis=-1)


@pytest.mark.parametrize("case", ["arm_reach", "arm_reach_goal_margin"])
def test_arm_reach_end_effector_features_follow_forward_kinematics(case):
    r = rollout(case)
    np.testing.assert_allclose(r["features"], r["next_obs"][..., 9:12], **SAME_POSITION_TOL)
    mask = kept(r)
    np.testing.assert_allclose(r["features"][mask], arm_end_effector(r["qpos"][mask]), atol=1e-5)
    goals = r["task"][..., :3] - np.array([0.0, 0.0, 0.5])
    radius = np.linalg.norm(goals, axis=-1)
    assert np.all((radius >= 0.1 - 1e-5) & (radius <= 0.5 + 1e-5))


def test_arm_reach_end_effector_on_goal_succeeds_and_far_fails():
    case = "arm_reach"
    env = make_env(case)
    qpos = np.random.default_rng(6).uniform(-np.pi, np.pi, (NUM_ENVS, 3))
    tip = arm_end_effector(qpos)
    on = step_placed(case, qpos, tip)
    assert np.all(on.success) and np.all(on.reward == 0.0) and np.all(on.terminated)
    near = step_placed(case, qpos, tip + np.array([0.0, 0.0, 1.5 * env.family.margin]))
    assert not np.any(near.success) and np.all(near.reward == -1.0)


def test_arm_reach_goal_margin_success_depends_on_the_commanded_margin():
    case = "arm_reach_goal_margin"
    qpos = np.random.default_rng(7).uniform(-np.pi, np.pi, (NUM_ENVS, 3))
    goal = arm_end_effector(qpos) + np.array([0.0, 0.05, 0.0])
    wide = step_placed(case, qpos, np.concatenate([goal, np.full((NUM_ENVS, 1), 0.06)], -1))
    narrow = step_placed(case, qpos, np.concatenate([goal, np.full((NUM_ENVS, 1), 0.04)], -1))
    assert np.all(wide.success) and not np.any(narrow.success)


# --- half cheetah ---------------------------------------------------------------------


def test_half_cheetah_reward_is_minus_speed_error_minus_control_cost():
    env, r = make_env("half_cheetah"), rollout("half_cheetah")
    np.testing.assert_allclose(
        r["features"][..., 0][kept(r)], forward_velocity(r, 0.05), rtol=1e-4, atol=1e-4
    )
    speed = r["features"][..., 0]
    expected = -np.abs(speed - r["task_before"][..., 0]) - 0.05 * (r["action"] ** 2).sum(-1)
    np.testing.assert_allclose(r["reward"], expected, rtol=1e-5, atol=1e-5)
    assert env.episode_length == 100 and not has_achieved(env.family)
    tasks = r["task"].ravel()
    assert np.all((tasks >= 0.0) & (tasks <= 3.0)) and tasks.std() > 0.5


def test_half_cheetah_at_rest_scores_minus_the_target_speed():
    qpos = np.tile(make_env("half_cheetah").mj_model.qpos0, (NUM_ENVS, 1))
    targets = np.linspace(0.0, 3.0, NUM_ENVS)[:, None]
    out = step_placed("half_cheetah", qpos, targets)
    # Dropped from rest for 0.05 s, the torso barely moves forward.
    assert np.all(np.abs(out.features[:, 0]) < 0.05)
    np.testing.assert_allclose(out.reward, -targets[:, 0], atol=0.05)


# --- walker -----------------------------------------------------------------------------


def test_walker_features_match_mujoco_on_the_host():
    import mujoco

    env, r = make_env("walker"), rollout("walker")
    model, data = env.mj_model, mujoco.MjData(env.mj_model)
    torso = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "torso")
    feet = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, n) for n in ("foot", "foot_left")]
    mask = kept(r)
    for t, n in list(zip(*np.nonzero(mask), strict=True))[::37]:  # a sample of the steps
        data.qpos[:] = r["qpos"][t, n]
        mujoco.mj_forward(model, data)
        com = data.subtree_com[0]
        expected = [data.xpos[torso, 2] - 0.5, r["features"][t, n, 1]]
        for foot in feet:
            expected += [data.xpos[foot, 0] - com[0], data.xpos[foot, 2] - com[2]]
        np.testing.assert_allclose(r["features"][t, n], expected, atol=1e-4)
    np.testing.assert_allclose(
        r["features"][..., 1][mask], forward_velocity(r, 0.02), rtol=1e-4, atol=1e-4
    )


def test_walker_reward_is_linear_in_the_features_and_control():
    env, r = make_env("walker"), rollout("walker")
    phi = np.concatenate([r["features"], (r["action"] ** 2).sum(-1, keepdims=True)], -1)
    np.testing.assert_allclose(r["reward"], (phi * r["task_before"]).sum(-1), rtol=1e-5, atol=1e-5)
    tasks = r["task"].reshape(-1, env.family.task_dim)
    assert np.all(tasks[:, :-1] >= -1) and np.all(tasks[:, :-1] <= 1)
    assert np.all(tasks[:, -1] >= -1) and np.all(tasks[:, -1] <= 0)
    assert not np.any(r["success"]) and not has_achieved(env.family)


# --- quadruped --------------------------------------------------------------------------


def test_quadruped_torso_on_goal_succeeds_and_far_fails():
    case = "quadruped"
    env = make_env(case)
    angle = np.linspace(0, 2 * np.pi, NUM_ENVS, endpoint=False)
    goals = np.stack([np.cos(angle), np.sin(angle)], -1)
    qpos = np.tile(env.mj_model.qpos0, (NUM_ENVS, 1))
    qpos[:, :2] = goals
    on = step_placed(case, qpos, goals)
    assert np.all(on.success) and np.all(on.reward == 0.0) and np.all(on.terminated)
    np.testing.assert_allclose(on.features, goals, atol=0.02)  # barely moved in 0.05 s
    far = step_placed(case, qpos, -goals)
    assert not np.any(far.success) and np.all(far.reward == -1.0)
    assert envs.make("finger").episode_length == 200
    assert not np.any(far.terminated)


def test_quadruped_goals_lie_on_the_unit_circle_and_xy_is_observed():
    r = rollout("quadruped")
    np.testing.assert_allclose(np.linalg.norm(r["task"], axis=-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(r["features"], r["next_obs"][..., :2], **SAME_POSITION_TOL)


def test_quadruped_direction_reward_is_velocity_along_psi_minus_control():
    r = rollout("quadruped_direction")
    mask = kept(r)
    velocity = (r["qpos"][..., :2] - r["qpos_before"][..., :2])[mask] / 0.05
    np.testing.assert_allclose(r["features"][mask], velocity, rtol=1e-4, atol=1e-4)
    expected = (r["features"] * r["task_before"]).sum(-1) - 0.1 * (r["action"] ** 2).sum(-1)
    np.testing.assert_allclose(r["reward"], expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(r["task"], axis=-1), 1.0, rtol=1e-5)
    assert not np.any(r["terminated"])
    assert envs.make("quadruped", family="direction").episode_length == 300
    assert envs.make("quadruped").episode_length == 300


def test_quadruped_stays_finite_under_full_torque_bang_bang_actions():
    # With 2 solver iterations and 6 line-search steps, 7 of 512 such episodes went to
    # inf/NaN (and the first 256 of this key hold several of them); 4 and 8 keep all finite.
    env = envs.make("quadruped", family="direction")
    num_envs = 256

    def step(state, key):
        action = jnp.sign(jax.random.normal(key, (num_envs, env.action_size)))
        nxt = env.step_batch(state, action)
        return nxt, (nxt.obs, nxt.features)

    def run(key):
        reset_key, step_key = jax.random.split(key)
        state = jax.vmap(env.reset)(jax.random.split(reset_key, num_envs))
        return jax.lax.scan(step, state, jax.random.split(step_key, env.episode_length))[1]

    obs, features = jax.device_get(jax.jit(run)(jax.random.key(3)))
    assert np.isfinite(obs).all() and np.isfinite(features).all()
    assert np.abs(obs[..., 15:]).max() < 1e3  # velocities stay physical


def test_quadruped_expert_walks_along_the_commanded_direction_and_is_steered_by_it():
    from common.collect import make_rollout
    from envs.experts import make_expert

    env = envs.make("quadruped", family="direction", episode_length=100)
    expert = make_expert("quadruped", env)
    sign = jnp.concatenate([jnp.ones(16), -jnp.ones(16)])[:, None]  # half walk towards −ψ

    def policy(obs, task, key):
        return expert(obs, sign * task, key)

    out = jax.device_get(jax.jit(make_rollout(env, policy, 32))(jax.random.key(0)))
    velocity = out["features"][:, 50:].mean(1)  # (N, 2) second half
    psi = np.asarray(sign) * out["task_labels"]  # the direction each env was steered to
    along = (velocity * psi).sum(-1)
    across = np.abs(psi[:, 0] * velocity[:, 1] - psi[:, 1] * velocity[:, 0])
    assert along.mean() > 0.4 and along.min() > 0.1, along
    angle = np.degrees(np.arctan2(across, along))  # heading error over 2.5 s of walking
    assert angle.mean() < 20 and np.mean(angle < 30) >= 0.9, np.sort(angle)
    with pytest.raises(ValueError, match="family=direction"):
        make_expert("quadruped", envs.make("quadruped"))


# --- finger -----------------------------------------------------------------------------


def knob_tip(qpos: np.ndarray) -> np.ndarray:
    """The knob tip, 0.12 m from the axle at (0.1, 0) along the knob angle."""
    angle = qpos[..., 2]
    return np.stack([0.1 + 0.12 * np.cos(angle), 0.12 * np.sin(angle)], axis=-1)


def test_finger_knob_tip_features_follow_the_knob_angle():
    r = rollout("finger")
    mask = kept(r)
    np.testing.assert_allclose(r["features"][mask], knob_tip(r["qpos"][mask]), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(r["task"] - [0.1, 0.0], axis=-1), 0.12, rtol=1e-5)
    assert np.ptp(r["qpos"][..., 2]) > 0.1  # the finger does turn the knob sometimes


def test_finger_knob_tip_on_goal_succeeds_and_far_fails():
    case = "finger"
    knob = np.linspace(-np.pi, np.pi, NUM_ENVS, endpoint=False)
    qpos = np.stack([np.full(NUM_ENVS, np.pi / 2), np.zeros(NUM_ENVS), knob], -1)  # finger up
    goals = knob_tip(qpos)
    on = step_placed(case, qpos, goals)
    assert np.all(on.success) and np.all(on.reward == 0.0) and np.all(on.terminated)
    np.testing.assert_allclose(on.features, goals, atol=1e-5)  # nothing touched the knob
    far = step_placed(case, qpos, knob_tip(qpos + np.array([0.0, 0.0, np.pi])))
    assert not np.any(far.success) and np.all(far.reward == -1.0)
    assert envs.make("finger").episode_length == 200
