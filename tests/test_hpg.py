"""Hindsight policy gradients: the weighted per-decision weights against a NumPy
reference, the estimator against the exact gradient of a bandit, the active goals,
the rewards, invariants of the jitted loop and the command line."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ROOT, load_algo

from harness import cli

SETTINGS = {"bitflip": ("n_bits=4",), "pointnav": ("dim=2", "episode_length=10")}


def hpg():
    return load_algo("hpg")


def tiny_args(env_id, **overrides):
    fields = dict(
        env_id=env_id,
        env_kwargs=SETTINGS[env_id],
        num_envs=4,
        total_timesteps=400,
        num_chunks=2,
        max_goals=4,
        hidden_sizes=(16,),
        eval_episodes=8,
        quiet=True,
    )
    fields.update(overrides)
    return hpg().Args(**fields)


# ---------------------------------------------------------------- the estimator
def numpy_weights(logp_goal, logp_cmd, reward):
    """C_t⁽ⁱ⁾(g) = Σ_{j ≥ t} [Π_{k ≤ j} ρ_k⁽ⁱ⁾(g) / Σ_l Π_{k ≤ j} ρ_k⁽ˡ⁾(g)] r_j⁽ⁱ⁾(g),
    loop by loop."""
    g_count, n, t = logp_goal.shape
    coef = np.zeros((g_count, n, t))
    for g in range(g_count):
        w = np.zeros((n, t))
        for i in range(n):
            for j in range(t):
                w[i, j] = np.prod(
                    [np.exp(logp_goal[g, i, k] - logp_cmd[i, k]) for k in range(j + 1)]
                )
        w = w / w.sum(axis=0, keepdims=True)
        for i in range(n):
            for s in range(t):
                coef[g, i, s] = sum(w[i, j] * reward[g, i, j] for j in range(s, t))
    return coef


def test_weights_equal_a_numpy_reference():
    rng = np.random.default_rng(0)
    for _ in range(5):
        g_count, n, t = rng.integers(1, 5), rng.integers(1, 7), rng.integers(1, 9)
        logp_goal = rng.normal(-1.0, 0.7, (g_count, n, t))
        logp_cmd = rng.normal(-1.0, 0.7, (n, t))
        reward = (rng.random((g_count, n, t)) < 0.3).astype(float)
        coef, ess = hpg().hpg_weights(
            jnp.asarray(logp_goal, jnp.float32), jnp.asarray(logp_cmd, jnp.float32), reward
        )
        # float32 sums of a few log-ratios against float64 products
        np.testing.assert_allclose(coef, numpy_weights(logp_goal, logp_cmd, reward), atol=1e-5)
        assert np.all((np.asarray(ess) >= 1 - 1e-5) & (np.asarray(ess) <= n + 1e-4))


def test_the_own_goal_gets_reinforce():
    """Under the goal each episode pursued the ratios are 1: C = return-to-go / N."""
    rng = np.random.default_rng(1)
    logp = rng.normal(-1.0, 0.5, (6, 5))
    reward = (rng.random((1, 6, 5)) < 0.4).astype(np.float32)
    coef, ess = hpg().hpg_weights(jnp.asarray(logp)[None], jnp.asarray(logp), reward)
    to_go = np.flip(np.cumsum(np.flip(reward[0], -1), -1), -1) / 6
    np.testing.assert_allclose(coef[0], to_go, atol=1e-6)
    np.testing.assert_allclose(ess, 6.0, rtol=1e-5)


def test_the_estimator_approaches_the_exact_gradient_of_a_bandit():
    """A one-step bandit: goals are the K actions, r(a, g) = 1[a = g], π(a | g) = softmax(θ_g).
    Episodes act for ONE commanded goal; the estimator for every other goal g uses only
    the ratios π(a | g) / π(a | commanded). With many episodes it must approach the
    exact ∇_θ mean_g π(g | g), goals it never pursued included."""
    k, n = 4, 40_000
    theta = jnp.asarray(np.random.default_rng(2).normal(0, 0.8, (k, k)), jnp.float32)
    commanded = 1
    actions = jax.random.categorical(jax.random.key(0), theta[commanded], shape=(n,))
    goals = jnp.arange(k)

    def surrogate(theta):
        logp = jax.nn.log_softmax(theta)  # (goal, action)
        logp_goal = logp[:, actions][:, :, None]  # (G, N, 1)
        logp_cmd = logp[commanded, actions][:, None]  # (N, 1)
        reward = (actions[None, :] == goals[:, None]).astype(jnp.float32)[:, :, None]
        return hpg().hpg_surrogate(logp_goal, logp_cmd, reward, jnp.ones(k, bool))[0]

    def objective(theta):  # mean over goals of the probability of reaching each
        return jnp.mean(jnp.diag(jax.nn.softmax(theta)))

    estimate = -jax.grad(surrogate)(theta)  # the surrogate is minus the objective
    exact = jax.grad(objective)(theta)
    # Monte Carlo error of 40k episodes: entries are ~0.05, the error ~5e-3
    np.testing.assert_allclose(estimate, exact, atol=8e-3)
    assert np.abs(np.asarray(exact)).max() > 0.03


def test_goal_rewards_count_the_first_reach_or_every_step_at_the_goal():
    rng = np.random.default_rng(3)
    reached = rng.random((5, 7)) < 0.3
    first = np.zeros((5, 7))
    for i in range(5):
        hits = np.flatnonzero(reached[i])
        if hits.size:
            first[i, hits[0]] = 1
    module = hpg()
    np.testing.assert_array_equal(module.goal_rewards(jnp.asarray(reached), True), first)
    np.testing.assert_array_equal(module.goal_rewards(jnp.asarray(reached), False), reached)


def test_active_goals_are_distinct_achieved_goals_drawn_uniformly():
    """One goal visited 20 times and 7 visited once: each of the 8 distinct goals is
    drawn with probability 3/8, not in proportion to its visits."""
    achieved = np.concatenate([np.zeros((20, 2)), np.arange(1, 8)[:, None] * np.ones((7, 2))])
    achieved = jnp.asarray(np.random.default_rng(4).permutation(achieved), jnp.float32)
    draws = jax.vmap(lambda key: hpg().active_goals(key, achieved, 3))(
        jax.random.split(jax.random.key(0), 4000)
    )
    goals, valid = np.asarray(draws[0]), np.asarray(draws[1])
    assert valid.all()
    for g in goals:  # distinct, and each an achieved goal
        assert len({tuple(x) for x in g}) == 3
        assert all(x[0] in range(8) and x[0] == x[1] for x in g)
    frequency = np.bincount(goals[:, :, 0].astype(int).ravel(), minlength=8) / 4000
    np.testing.assert_allclose(frequency, 3 / 8, atol=0.04)  # ±4 standard errors


def test_fewer_distinct_goals_than_asked_leave_the_rest_invalid():
    achieved = jnp.asarray([[1.0], [1.0], [2.0]])
    goals, valid = hpg().active_goals(jax.random.key(0), achieved, 5)
    assert goals.shape == (5, 1)
    assert valid.sum() == 2
    assert sorted(np.asarray(goals)[np.asarray(valid), 0]) == [1.0, 2.0]


# ---------------------------------------------------------------- the jitted loop
@pytest.mark.parametrize("env_id", list(SETTINGS))
def test_same_seed_is_identical_and_seeds_differ(env_id):
    trainer = hpg().make_train(tiny_args(env_id))
    keys = jax.vmap(jax.random.key)(jnp.array([3, 4]))
    init, chunk = jax.jit(jax.vmap(trainer.init)), jax.jit(jax.vmap(trainer.train_chunk))

    def run():  # the same compiled programs on the same inputs, twice: identical bits
        state = init(keys)
        for _ in range(2):
            state, metrics = chunk(state)
        return state, metrics

    (state, metrics), (again, _) = run(), run()
    params = [np.asarray(x) for x in jax.tree.leaves(state.params)]
    again_params = [np.asarray(x) for x in jax.tree.leaves(again.params)]
    assert all(np.array_equal(x, y) for x, y in zip(params, again_params, strict=True))
    assert all(not np.array_equal(x[0], x[1]) for x in params if x[0].size > 1)
    for value in jax.tree.leaves(metrics):
        assert np.all(np.isfinite(np.asarray(value)))
    assert np.asarray(state.env_steps).tolist() == [2 * trainer.steps_per_chunk] * 2


# ---------------------------------------------------------------- command line
@pytest.mark.parametrize(("env_id", "extra"), [("bitflip", ()), ("pointnav", ("--no-hindsight",))])
def test_script_runs_from_the_command_line(env_id, extra, tmp_path):
    cmd = [
        sys.executable,
        os.path.join(ROOT, "algos", "hpg.py"),
        "--env-id",
        env_id,
        "--env-kwargs",
        *SETTINGS[env_id],
        "--num-envs",
        "4",
        "--total-timesteps",
        "400",
        "--num-chunks",
        "2",
        "--hidden-sizes",
        "16",
        "--eval-episodes",
        "8",
        "--num-seeds",
        "2",
        *extra,
        "--quiet",
        "--run-dir",
        str(tmp_path),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = os.listdir(tmp_path)
    assert run.startswith(f"{env_id}__hpg__1__")
    assert {"metrics.csv", "args.json"} <= set(os.listdir(tmp_path / run))
    assert "eval success" in result.stdout + result.stderr


BAD_INPUT = [
    (["--env-id", "nope"], "unknown env id"),
    (["--num-envs", "0"], "--num-envs must be positive"),
    (["--max-goals", "0"], "--max-goals must be positive"),
    (["--learning-rate", "-1"], "--learning-rate must be positive"),
    (["--min-std", "0"], "--min-std must be positive"),
    (["--total-timesteps", "100", "--num-chunks", "20"], "less than one batch"),
    (["--env-id", "pointnav", "--env-kwargs", "num_goals=4"], "achieved by states"),
    (["--env-id", "half_cheetah"], "achieved by states"),
]


@pytest.mark.parametrize("argv,message", BAD_INPUT)
def test_bad_input_exits_2_with_one_sentence(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.parse(hpg().Args, argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in " ".join(err.split())
    assert err.count("\n") == 1
