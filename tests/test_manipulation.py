"""Manipulation on MJX (envs/push.py): the physics a pushing task needs, the task's
definition (FetchPush's goals, margin and rewards) and the env contract. The rollouts
are compiled once per module and shared."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs

NUM_ENVS = 64
STEPS = 50


@pytest.fixture(scope="module")
def push():
    return envs.make("push")


def run(env, actions_of, key, steps=STEPS, num_envs=NUM_ENVS):
    """Episodes from fresh resets under `actions_of(state, key) -> (N, 3)` with
    `Env.transition` (no auto-reset): every state, stacked (T + 1, N, ...)."""

    def step(state, key):
        nxt = jax.vmap(env.transition)(state, actions_of(state, key))
        return nxt, nxt

    start = jax.vmap(env.reset)(jax.random.split(key, num_envs))
    _, states = jax.lax.scan(step, start, jax.random.split(jax.random.fold_in(key, 1), steps))
    return jax.device_get(jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), start, states))


def box_of(states):
    return states.features  # (T + 1, N, 3)


def grip_of(states):
    return states.obs[..., :3]


@pytest.fixture(scope="module")
def random_episodes(push):
    def actions(state, key):
        return jax.random.uniform(key, (NUM_ENVS, 3), minval=-1.0, maxval=1.0)

    return jax.jit(lambda key: run(push, actions, key))(jax.random.key(0))


def test_random_episodes_stay_finite_and_on_the_table(random_episodes):
    for leaf in jax.tree.leaves(random_episodes.obs):
        assert np.isfinite(leaf).all()
    z = box_of(random_episodes)[..., 2]
    # soft contacts let the 2.5 cm half-size box sink a few millimetres into the table;
    # it never falls through nor flies off
    assert z.min() > 0.015 and z.max() < 0.2, (z.min(), z.max())


def test_the_box_rests_where_nothing_touches_it(push):
    """Gripper held still far above the box: the box stays put for a whole episode."""

    def actions(state, key):
        del key
        return jnp.tile(jnp.array([0.0, 0.0, 1.0]), (NUM_ENVS, 1))  # straight up

    states = jax.jit(lambda key: run(push, actions, key))(jax.random.key(1))
    box = box_of(states)
    np.testing.assert_allclose(box[-1], box[0], atol=2e-3)  # resting on soft contacts


def test_a_dropped_box_falls_onto_the_table_and_rests(push):
    state = jax.vmap(push.reset)(jax.random.split(jax.random.key(2), 4))
    qpos = state.physics.qpos.at[:, 5].set(0.15)  # lift the box 15 cm and let go
    state = state.replace(physics=state.physics.replace(qpos=qpos))
    up = jnp.tile(jnp.array([0.0, 0.0, 1.0]), (4, 1))

    def step(state, _):
        nxt = jax.vmap(push.transition)(state, up)
        return nxt, nxt.features[:, 2]

    _, z = jax.jit(lambda s: jax.lax.scan(step, s, None, 50))(state)
    z = np.asarray(z)
    assert z[0].min() < 0.15  # it falls
    np.testing.assert_allclose(z[-1], 0.025, atol=5e-3)  # and lies on the table
    np.testing.assert_allclose(z[-5:], z[-1:].repeat(5, 0), atol=1e-3)  # at rest


def test_the_gripper_pushes_the_box(push):
    """Move behind the box (away from the goal), lower, then drive through it: the box
    moves along the push; a gripper that stays away leaves it alone."""

    def expert(state, key):
        del key
        grip, box = state.obs[:, :3], state.obs[:, 3:6]
        direction = state.task[:, :2] - box[:, :2]
        direction = direction / jnp.maximum(
            jnp.linalg.norm(direction, axis=-1, keepdims=True), 1e-6
        )
        behind = box[:, :2] - 0.06 * direction
        to_behind = behind - grip[:, :2]
        far = jnp.linalg.norm(to_behind, axis=-1, keepdims=True) > 0.01
        high = grip[:, 2:] > 0.05
        xy = jnp.where(far, 10 * to_behind, 10 * (box[:, :2] + 0.02 * direction - grip[:, :2]))
        # above the box while travelling, down to the box's height once behind it
        z = jnp.where(far & ~high, 1.0, jnp.where(far, 0.0, -1.0))
        return jnp.clip(jnp.concatenate([xy, z], axis=-1), -1.0, 1.0)

    states = jax.jit(lambda key: run(push, expert, key))(jax.random.key(3))
    moved = np.linalg.norm(box_of(states)[-1, :, :2] - box_of(states)[0, :, :2], axis=-1)
    assert np.median(moved) > 0.03, np.sort(moved)


def test_goals_and_boxes_follow_fetchpush(push):
    states = jax.device_get(jax.vmap(push.reset)(jax.random.split(jax.random.key(4), 2000)))
    goal, box = states.task, states.features
    assert np.abs(goal[:, :2]).max() <= 0.15 and np.abs(goal[:, :2]).max() > 0.14
    np.testing.assert_allclose(goal[:, 2], 0.025)
    assert np.abs(box[:, :2]).max() <= 0.15
    assert np.linalg.norm(box[:, :2], axis=-1).min() >= 0.1 - 1e-6  # 0.1 m from the gripper
    np.testing.assert_allclose(box[:, 2], 0.025)


def test_reward_and_success_are_fetchs_and_recomputable(push, random_episodes):
    family = push.family
    goal = jnp.array([0.1, 0.0, 0.025])
    assert family.success(goal + jnp.array([0.049, 0.0, 0.0]), goal)
    assert not family.success(goal + jnp.array([0.051, 0.0, 0.0]), goal)
    assert family.reward(goal, None, goal) == 0.0
    assert family.reward(goal + 0.1, None, goal) == -1.0
    s = random_episodes
    recomputed = jax.vmap(jax.vmap(family.reward, (0, None, 0)), (0, None, 0))(
        s.features[1:], None, s.task[1:]
    )
    np.testing.assert_array_equal(np.asarray(recomputed), s.reward[1:])
    assert push.episode_length == 50 and not push.terminate_on_success


def test_observation_holds_the_box_and_gripper_positions(random_episodes):
    obs = random_episodes.obs
    np.testing.assert_allclose(obs[..., 3:6], random_episodes.features, atol=1e-6)
    np.testing.assert_allclose(obs[..., 6:9], obs[..., 3:6] - obs[..., :3], atol=1e-6)


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="margin"):
        envs.make("push", margin=0.0)
    with pytest.raises(ValueError, match="at most 0.25"):
        envs.make("push", target_range=0.4)
