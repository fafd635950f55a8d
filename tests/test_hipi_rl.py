"""HIPI-RL: the inverse-RL relabeling against a NumPy reference, the partition
function ablation, the paper's didactic results, every strategy on every family
it applies to, and the command line."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import load_algo

import envs
from harness import cli, training

hipi_rl = load_algo("hipi_rl")


def numpy_posterior(logits, use_partition):
    logits = np.asarray(logits, np.float64)
    if use_partition:
        m = logits.max(axis=0)
        log_z = m + np.log(np.exp(logits - m).sum(axis=0)) - np.log(logits.shape[0])
        logits = logits - log_z
    logits = logits - logits.max(axis=1, keepdims=True)
    q = np.exp(logits)
    return q / q.sum(axis=1, keepdims=True)


def test_log_partition_is_batch_logsumexp_minus_log_batch():
    logits = np.random.default_rng(0).normal(size=(7, 5)) * 3
    expected = np.log(np.exp(logits).sum(axis=0)) - np.log(7)
    np.testing.assert_allclose(hipi_rl.log_partition(jnp.asarray(logits)), expected, rtol=1e-5)


@pytest.mark.parametrize("use_partition", [True, False])
def test_relabel_inverse_rl_samples_the_posterior(use_partition):
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(6, 5)) * 2 + rng.normal(size=(1, 5)) * 3  # tasks of unequal scale
    expected = numpy_posterior(logits, use_partition)
    _, log_q = hipi_rl.relabel_inverse_rl(jax.random.key(0), jnp.asarray(logits), use_partition)
    np.testing.assert_allclose(np.exp(log_q), expected, atol=1e-5)
    draws = 20_000
    keys = jax.random.split(jax.random.key(1), draws)
    chosen = jax.jit(
        jax.vmap(lambda k: hipi_rl.relabel_inverse_rl(k, jnp.asarray(logits), use_partition)[0])
    )(keys)  # (draws, B)
    chosen = np.asarray(chosen)
    frequency = np.stack([(chosen == j).mean(axis=0) for j in range(5)], axis=1)
    # binomial standard error is at most 0.0036 at 20k draws: 0.015 is four of them
    np.testing.assert_allclose(frequency, expected, atol=0.015)


def test_partition_removes_task_scale_and_nothing_else():
    rng = np.random.default_rng(2)
    logits = jnp.asarray(rng.normal(size=(8, 4)))
    shifted = logits + jnp.asarray([5.0, -3.0, 0.0, 10.0])  # a per-task constant
    with_z = hipi_rl.relabel_log_posterior
    # with log Z the posterior ignores a per-task offset; without it, it does not
    np.testing.assert_allclose(with_z(logits, True), with_z(shifted, True), atol=1e-5)
    assert not np.allclose(with_z(logits, False), with_z(shifted, False), atol=1e-2)
    # where every task has the same log Z, the ablation changes nothing
    balanced = logits - hipi_rl.log_partition(logits)[None]
    np.testing.assert_allclose(with_z(balanced, True), with_z(balanced, False), atol=1e-5)


def test_fig2_partition_function_sends_each_trajectory_to_its_own_task():
    from experiments.hipi_didactic import fig2_posteriors

    posteriors = fig2_posteriors()
    assert posteriors["without_partition"].argmax(axis=1).tolist() == [0, 0]
    assert posteriors["with_partition"].argmax(axis=1).tolist() == [0, 1]


def test_fig4_inverse_rl_relabeling_reaches_every_goal_final_state_only_its_own():
    from experiments.hipi_didactic import fig4_outcomes

    outcomes = fig4_outcomes()
    assert outcomes["final"] == {
        ("A", "B"): True,
        ("A", "D"): False,
        ("C", "B"): False,
        ("C", "D"): True,
    }
    assert all(outcomes["inverse_rl"].values())


def test_fig4_posterior_gives_each_transition_the_goals_its_action_is_optimal_for():
    """The claim of Fig. 4 is about which task each transition gets. The steps towards
    the crossing are optimal for both goals and the posterior splits them evenly; the
    steps past it are optimal for their own goal only and get it (0.88 and 0.98).
    Random, all-goal and final-state relabeling fail the same check: the first two give
    the steps past the crossing the wrong goal half the time, the last never gives the
    steps towards the crossing the other goal."""
    from experiments.hipi_didactic import (
        crossing_dataset,
        fig4_task_distributions,
        optimal_for,
        relabels_by_optimality,
    )

    data = crossing_dataset()
    optimal = optimal_for(data)
    # A -> B: right from (2,0), (2,1) is optimal for D too; from (2,2), (2,3) it is not
    np.testing.assert_array_equal(optimal[:4, 1], [True, True, False, False])
    q = fig4_task_distributions(data)
    np.testing.assert_allclose(q["inverse_rl"].sum(axis=1), 1.0, atol=1e-6)
    verdicts = {name: relabels_by_optimality(dist, optimal) for name, dist in q.items()}
    assert verdicts == {"inverse_rl": True, "final": False, "random": False, "all_goals": False}


def test_a_finite_set_is_each_candidate_once():
    """Fix of a bug: the batch's commanded tasks were added to a finite family's whole set,
    so each appeared two or more times and the posterior's prior was no longer uniform.
    With the set once, the posterior equals the NumPy softmax over the set."""
    env = hipi_rl.make_env(hipi_rl.Args(env_id="pointnav", env_kwargs=("num_goals=4",)))
    goals = np.asarray(env.family.tasks)
    rng = np.random.default_rng(7)
    commanded = goals[rng.integers(0, 4, size=6)]
    candidates, index = hipi_rl.candidate_tasks(
        env.family, jax.random.key(0), jnp.asarray(commanded), None, 3
    )
    np.testing.assert_array_equal(np.asarray(candidates), goals)  # each task once, in order
    np.testing.assert_array_equal(goals[np.asarray(index)], commanded)
    logits = rng.normal(size=(6, 4)) * 3
    log_z = np.logaddexp.reduce(logits, axis=0) - np.log(6)
    expected = np.exp(logits - log_z) / np.exp(logits - log_z).sum(axis=1, keepdims=True)
    got = np.exp(np.asarray(hipi_rl.relabel_log_posterior(jnp.asarray(logits), True)))
    np.testing.assert_allclose(got, expected, atol=1e-6)  # float32 softmax of values < 20


def test_goal_family_candidates_are_commanded_reached_and_prior():
    env = hipi_rl.make_env(hipi_rl.Args(env_id="pointnav"))
    task, reached = jnp.zeros((5, 2)), jnp.ones((5, 2))
    candidates, index = hipi_rl.candidate_tasks(env.family, jax.random.key(1), task, reached, 3)
    assert candidates.shape == (13, 2)
    expected = np.r_[np.zeros((5, 2)), np.ones((5, 2))]  # commanded, then reached
    np.testing.assert_array_equal(np.asarray(candidates[:10]), expected)
    np.testing.assert_array_equal(np.asarray(index), np.arange(5))


def numpy_trunk(params, inputs):
    """Trunk in float64 NumPy, as an MLP on the concatenated inputs."""
    p = jax.tree.map(lambda v: np.asarray(v, np.float64), params)
    x = np.maximum(np.concatenate(inputs, axis=-1) @ p["kernel"] + p["bias"], 0.0)
    for i in range(len(p) - 2):
        x = np.maximum(x @ p[f"Dense_{i}"]["kernel"] + p[f"Dense_{i}"]["bias"], 0.0)
    return x


def numpy_dense(params, x):
    return x @ np.asarray(params["kernel"], np.float64) + np.asarray(params["bias"], np.float64)


def numpy_squashed_log_prob(mean, log_std, pre_tanh):
    std = np.exp(log_std)
    gauss = -0.5 * ((pre_tanh - mean) / std) ** 2 - log_std - 0.5 * np.log(2 * np.pi)
    return np.sum(gauss - np.log1p(-(np.tanh(pre_tanh) ** 2)))


def test_soft_q_logits_equal_numpy_reference():
    """R[i, j] = r_j(s_i, a_i) − α log π(a_i | s_i, ψ_j)
    + γ(1 − d_ij)[Q_1(s'_i, ã_ij, ψ_j) − α log π(ã_ij | s'_i, ψ_j)] (Eq. 13), pair by
    pair in float64 NumPy from the network parameters, with the same noise for ã."""
    args = hipi_rl.Args(env_id="pointnav", env_kwargs=("margin=0.5",), hidden_sizes=(8, 6))
    family = hipi_rl.make_env(args).family
    state = hipi_rl.make_train(args).init(jax.random.key(0))
    actor = hipi_rl.Actor(action_dim=2, hidden_sizes=(8, 6))
    critic = hipi_rl.TwinCritic(hidden_sizes=(8, 6))
    gamma, alpha, terminate = 0.9, np.exp(-1.0), True
    logits_fn = hipi_rl.make_soft_q_logits(actor, critic, family, gamma)
    rng = np.random.default_rng(3)
    obs, next_obs = (rng.uniform(-1, 1, (5, 2)).astype(np.float32) for _ in range(2))
    features = next_obs
    tasks = np.r_[next_obs[:2], rng.uniform(-1, 1, (2, 2))].astype(np.float32)  # 2 hits
    tasks_n = tasks * 2.0  # what the networks see may differ from what the family sees
    action = rng.uniform(-0.9, 0.9, size=(5, 2)).astype(np.float32)
    key = jax.random.key(7)
    logits = logits_fn(
        key,
        state.actor_params,
        state.critic_params,
        jnp.asarray(-1.0),
        *map(jnp.asarray, (obs, action, next_obs, features, tasks, tasks_n)),
        terminate,
    )
    noise = np.asarray(jax.random.normal(key, (5, 4, 2)), np.float64)
    a, c = state.actor_params["params"], state.critic_params["params"]

    def pi(s, task):
        h = numpy_trunk(a["Trunk_0"], [s, task])
        return numpy_dense(a["Dense_0"], h), np.clip(numpy_dense(a["Dense_1"], h), -5, 2)

    def q1(s, task, act):
        return float(numpy_dense(c["heads_0"], numpy_trunk(c["trunks_0"], [s, task, act]))[0])

    # hits are float32 distances within the margin: none lies within a few ulps of it,
    # where NumPy and JAX could round to opposite sides
    distance = np.linalg.norm(features[:, None] - tasks[None], axis=-1)
    assert np.abs(distance - 0.5).min() > 1e-6 and (distance <= 0.5).sum() >= 2
    expected = np.zeros((5, 4))
    for i in range(5):
        for j in range(4):
            hit = float(distance[i, j] <= 0.5)
            next_mean, next_log_std = pi(next_obs[i], tasks_n[j])
            pre = next_mean + np.exp(next_log_std) * noise[i, j]
            soft_value = q1(next_obs[i], tasks_n[j], np.tanh(pre)) - alpha * (
                numpy_squashed_log_prob(next_mean, next_log_std, pre)
            )
            mean, log_std = pi(obs[i], tasks_n[j])
            log_pi = numpy_squashed_log_prob(mean, log_std, np.arctanh(action[i]))
            expected[i, j] = (hit - 1.0) - alpha * log_pi + gamma * (1.0 - hit) * soft_value
    # float32 networks and log-densities against float64: values of order 1-10
    np.testing.assert_allclose(np.asarray(logits), expected, rtol=1e-4, atol=1e-4)


def test_squashed_log_prob_matches_change_of_variables():
    mean, log_std = jnp.asarray([0.3, -0.2]), jnp.asarray([-0.5, 0.1])
    action, log_pi = hipi_rl.sample_action(jax.random.key(0), mean, log_std)
    pre = np.arctanh(np.asarray(action, np.float64))
    std = np.exp(np.asarray(log_std, np.float64))
    gauss = -0.5 * ((pre - np.asarray(mean)) / std) ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi)
    expected = np.sum(gauss - np.log(1 - np.tanh(pre) ** 2))
    np.testing.assert_allclose(log_pi, expected, rtol=1e-4)
    np.testing.assert_allclose(hipi_rl.action_log_prob(mean, log_std, action), log_pi, rtol=1e-3)


FAMILIES = {
    "goal": ("pointnav", ("dim=2",)),
    "goal_set": ("pointnav", ("dim=2", "num_goals=8")),
    "four_rooms": ("four_rooms", ()),
}
APPLICABLE = [
    (family, strategy)
    for family in FAMILIES
    for strategy in ("inverse_rl", "none", "random", "final", "future")
    if not (family == "goal_set" and strategy in ("final", "future"))
]


def tiny_args(env_id, env_kwargs, **overrides):
    fields = dict(
        env_id=env_id,
        env_kwargs=env_kwargs,
        num_envs=4,
        total_timesteps=240,
        num_chunks=2,
        learning_starts=40,
        batch_size=16,
        buffer_size=2000,
        hidden_sizes=(16,),
        eval_episodes=4,
        quiet=True,
        num_candidates=8,
    )
    fields.update(overrides)
    return hipi_rl.Args(**fields)


@pytest.mark.parametrize("family,strategy", APPLICABLE)
def test_every_strategy_runs_on_every_applicable_family(family, strategy):
    env_id, env_kwargs = FAMILIES[family]
    args = tiny_args(env_id, env_kwargs, relabel=strategy, num_prior_candidates=2)
    trainer = hipi_rl.make_train(args)
    state = jax.jit(jax.vmap(trainer.init))(training.seed_keys(0, 1))
    train_chunk = jax.jit(jax.vmap(trainer.train_chunk))
    state, metrics = train_chunk(train_chunk(state)[0])
    for name, value in metrics.items():
        assert np.all(np.isfinite(np.asarray(value))), name
    assert ("relabel/posterior_entropy" in metrics) == (strategy == "inverse_rl")
    if strategy == "inverse_rl":
        num_tasks = 8 + 8 + 2  # commanded + achieved or the goal set + prior draws
        entropy = float(metrics["relabel/posterior_entropy"][0])
        assert 0.0 <= entropy <= np.log(num_tasks) + 1e-4


def test_relabeled_rows_get_rewards_of_their_new_task():
    """With every row relabeled by `final`, the goal is reached by the episode's
    last stored step; rows at that step must now earn 0, so the batch's mean reward
    rises far above that of the commanded goals, which random behaviour rarely meets."""
    mean_reward = {}
    for strategy in ("none", "final"):
        args = tiny_args(
            "pointnav",
            ("dim=2", "margin=0.05", "episode_length=4"),
            relabel=strategy,
            relabel_prob=1.0,
            batch_size=64,
            learning_starts=0,
        )
        trainer = hipi_rl.make_train(args)
        state = jax.jit(jax.vmap(trainer.init))(training.seed_keys(0, 1))
        _, metrics = jax.jit(jax.vmap(trainer.train_chunk))(state)
        mean_reward[strategy] = float(metrics["relabel/reward"][0])
    assert mean_reward["none"] < -0.9
    assert mean_reward["final"] > -0.85  # about 1 in 4 rows sits at its episode's end


def test_no_partition_flag_reaches_the_update():
    args = cli.parse(hipi_rl.Args, ["--no-partition", "--env-id", "pointnav"])
    assert args.partition is False


class _NoGoalFamily:
    task_dim = 2
    tasks = None
    reward_bounds = None


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--relabel", "final"], "needs goals achieved by states"),
        (["--relabel", "inverse_rl"], "--clip-target needs known reward bounds"),
    ],
)
def test_family_without_goals_or_bounds_is_refused(argv, message, monkeypatch, capsys):
    env = envs.make("pointnav")
    env.family = _NoGoalFamily()
    monkeypatch.setitem(envs._REGISTRY, "no_goals", lambda **kw: env)
    cli.make_env.cache_clear()  # each case registers its own no_goals env
    with pytest.raises(SystemExit) as exit_info:
        cli.parse(hipi_rl.Args, ["--env-id", "no_goals", *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_discrete_env_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.parse(hipi_rl.Args, ["--env-id", "bitflip"])
    assert exit_info.value.code == 2
    assert "discrete actions" in capsys.readouterr().err
