"""HIPI-BC: trajectory returns and the inverse-RL posterior against NumPy references,
the partition-function ablation and Fig. 8's bias, the scripted-expert collector,
BC's loss and early stopping, the command line, and a learning test where
relabeling beats task-agnostic BC."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ROOT, load_algo

import envs
from common import dataset as ds
from common.collect import collect, make_rollout
from envs.experts import make_expert
from experiments import collect_demos
from harness import cli
from harness.logger import RunLogger, read_metrics

hipi_bc = load_algo("hipi_bc")


# ---------------------------------------------------------------- NumPy references
def numpy_returns(goals_of_tasks, features, mask, margin, bias=0.0):
    """R[i, j] = Σ_t mask (r_j + bias·[j == 0]) with the sparse goal reward, by loops."""
    b, t = mask.shape
    k = goals_of_tasks.shape[0]
    # A hit is a float32 distance within the margin: JAX may round one within a few ulps
    # (~1e-8 here) of the margin to its other side. The fixed NumPy inputs keep clear.
    distance = np.linalg.norm(features[:, :, None] - goals_of_tasks[None, None], axis=-1)
    assert np.abs(distance - margin)[mask].min() > 1e-6
    out = np.zeros((b, k))
    for i in range(b):
        for j in range(k):
            for s in range(t):
                if mask[i, s]:
                    hit = np.linalg.norm(features[i, s] - goals_of_tasks[j]) <= margin
                    out[i, j] += (0.0 if hit else -1.0) + (bias if j == 0 else 0.0)
    return out


def numpy_posterior(returns, use_partition):
    returns = np.asarray(returns, np.float64)
    if use_partition:
        m = returns.max(axis=0)
        log_z = m + np.log(np.exp(returns - m).sum(axis=0)) - np.log(returns.shape[0])
        returns = returns - log_z
    returns = returns - returns.max(axis=1, keepdims=True)
    q = np.exp(returns)
    return q / q.sum(axis=1, keepdims=True)


def random_trajectories(rng, goals, b=6, t=9, margin=0.3):
    """Features that wander near the goals, so that every task scores some hits."""
    near = goals[rng.integers(0, len(goals), size=(b, 1))]
    features = near + rng.normal(scale=margin, size=(b, t, goals.shape[1]))
    mask = np.arange(t)[None] < rng.integers(1, t + 1, size=(b, 1))
    actions = rng.normal(size=(b, t, goals.shape[1]))
    return features.astype(np.float32), actions.astype(np.float32), mask


# ---------------------------------------------------------------- relabeling
@pytest.mark.parametrize("bias", [0.0, 0.7])
def test_return_matrix_equals_numpy_loops(bias):
    rng = np.random.default_rng(0)
    env = envs.make("pointnav", num_goals=5, margin=0.3)
    goals = np.asarray(env.family.tasks)
    features, actions, mask = random_trajectories(rng, goals)
    returns = jax.jit(hipi_bc.return_matrix)(
        env.family, features, actions, mask, jnp.asarray(goals), bias
    )
    expected = numpy_returns(goals, features, mask, 0.3, bias)
    assert np.unique(expected).size > 3  # hits and misses, not a constant matrix
    np.testing.assert_allclose(returns, expected, atol=1e-4)


def test_log_partition_is_batch_logsumexp_minus_log_batch():
    returns = np.random.default_rng(1).normal(size=(7, 5)) * 3
    expected = np.log(np.exp(returns).sum(axis=0)) - np.log(7)
    np.testing.assert_allclose(hipi_bc.log_partition(jnp.asarray(returns)), expected, rtol=1e-5)


@pytest.mark.parametrize("use_partition", [True, False])
def test_sampled_tasks_follow_the_posterior(use_partition):
    rng = np.random.default_rng(2)
    returns = rng.normal(size=(6, 5)) * 2 + rng.normal(size=(1, 5)) * 3  # unequal task scales
    expected = numpy_posterior(returns, use_partition)
    _, log_q = hipi_bc.relabel_inverse_rl(jax.random.key(0), jnp.asarray(returns), use_partition)
    np.testing.assert_allclose(np.exp(log_q), expected, atol=1e-5)
    draws = 20_000
    chosen = jax.jit(
        jax.vmap(lambda k: hipi_bc.relabel_inverse_rl(k, jnp.asarray(returns), use_partition)[0])
    )(jax.random.split(jax.random.key(1), draws))
    frequency = np.stack([(np.asarray(chosen) == j).mean(axis=0) for j in range(5)], axis=1)
    # binomial standard error is at most 0.0036 at 20k draws: 0.015 is four of them
    np.testing.assert_allclose(frequency, expected, atol=0.015)


def test_partition_cancels_a_per_task_offset_and_the_ablation_does_not():
    rng = np.random.default_rng(3)
    returns = rng.normal(size=(8, 4)) * 2
    offset = np.array([5.0, -3.0, 0.0, 10.0])
    post = hipi_bc.relabel_log_posterior
    # with log Z an offset per task changes nothing
    np.testing.assert_allclose(
        post(jnp.asarray(returns + offset), True), post(jnp.asarray(returns), True), atol=1e-5
    )
    # without it, the posterior is the plain softmax of the shifted returns, exactly
    np.testing.assert_allclose(
        np.exp(post(jnp.asarray(returns + offset), False)),
        numpy_posterior(returns + offset, False),
        atol=1e-6,
    )
    assert np.abs(numpy_posterior(returns + offset, False) - numpy_posterior(returns, False)).max()
    # where every task already has the same log Z, the ablation changes nothing
    balanced = jnp.asarray(returns) - hipi_bc.log_partition(jnp.asarray(returns))[None]
    np.testing.assert_allclose(post(balanced, True), post(balanced, False), atol=1e-5)


def test_fig8_bias_leaves_the_partition_posterior_unchanged_and_captures_the_ablation():
    rng = np.random.default_rng(4)
    env = envs.make("pointnav", num_goals=4, margin=0.3)
    goals = np.asarray(env.family.tasks)
    features, actions, _ = random_trajectories(rng, goals, b=16, t=12)
    mask = np.ones((16, 12), bool)  # equal lengths: the bias is one constant per task

    def posterior(bias, use_partition):
        returns = hipi_bc.return_matrix(
            env.family, features, actions, mask, jnp.asarray(goals), bias
        )
        return np.exp(hipi_bc.relabel_log_posterior(returns, use_partition))

    clean = posterior(0.0, True)
    np.testing.assert_allclose(posterior(2.0, True), clean, atol=1e-5)
    assert posterior(2.0, False)[:, 0].min() > 0.99  # every trajectory goes to task 0
    assert clean[:, 0].mean() < 0.7


# ---------------------------------------------------------------- collection
def test_collected_returns_recomputed_from_features_equal_the_env_rewards():
    env = envs.make("pointnav", num_goals=3, terminate_on_success=True)
    rollout = jax.jit(make_rollout(env, make_expert("pointnav", env, 0.3), 64))
    out = jax.device_get(rollout(jax.random.key(0)))
    mask = np.arange(env.episode_length)[None] < out["lengths"][:, None]
    assert 1 <= out["lengths"].min() < out["lengths"].max() <= env.episode_length
    assert np.all(out["observations"][~mask] == 0) and np.all(out["features"][~mask] == 0)
    returns = jax.vmap(hipi_bc.trajectory_return, (None, 0, 0, 0, 0))(
        env.family, out["features"], out["actions"], mask, out["task_labels"]
    )
    # Two programs may round a distance within a few ulps of the margin to opposite sides
    # of it (a return off by 1): leave out trajectories passing within 1e-5 of it.
    distance = np.linalg.norm(out["features"] - out["task_labels"][:, None], axis=-1)
    clear = ~np.any(mask & (np.abs(distance - env.family.margin) <= 1e-5), axis=1)
    assert clear.mean() > 0.95
    np.testing.assert_allclose(returns[clear], out["returns"][clear], atol=1e-5)
    assert out["success"].mean() > 0.95


def test_collect_writes_the_requested_number_of_labelled_trajectories(tmp_path):
    env = envs.make("pointnav", num_goals=4)
    data, stats = collect(
        env, make_expert("pointnav", env), jax.random.key(0), 250, 100, "pointnav", {}
    )
    assert data.num_trajectories == 250 and data.task_labels.shape == (250, 2)
    assert len(np.unique(data.observations[:, 0, 0])) == 250  # no batch written twice
    assert stats["success_rate"] == 1.0
    path = str(tmp_path / "d.npz")
    ds.save(path, data)
    assert ds.load(path).num_trajectories == 250


# ---------------------------------------------------------------- BC
def goal_set_data(seed, b, t=10, margin=0.1):
    """Four goals of pointnav's set and B synthetic trajectories near them, as `Data`."""
    goals = np.asarray(envs.make("pointnav", num_goals=4).family.tasks)
    features, actions, mask = random_trajectories(np.random.default_rng(seed), goals, b, t, margin)
    data = hipi_bc.Data(
        observations=jnp.zeros((b, t, 2)),
        actions=jnp.asarray(actions),
        features=jnp.asarray(features),
        mask=jnp.asarray(mask),
        task_labels=jnp.zeros((b, 2)),
    )
    return goals, features, mask, data


def small_dataset(tmp_path, n=120, num_goals=4, labels=True):
    env = envs.make("pointnav", num_goals=num_goals)
    data, _ = collect(
        env,
        make_expert("pointnav", env),
        jax.random.key(0),
        n,
        n,
        "pointnav",
        {"num_goals": num_goals},
    )
    path = str(tmp_path / "demos.npz")
    ds.save(path, data if labels else data.without_labels())
    return path


def test_bc_loss_is_the_weighted_squared_error():
    rng = np.random.default_rng(5)
    policy = hipi_bc.Policy(action_dim=2, hidden_sizes=(8,))
    params = policy.init(jax.random.key(0), jnp.zeros(3), jnp.zeros(2))
    obs, tasks = rng.normal(size=(5, 3)), rng.normal(size=(5, 4, 2))
    weights, actions = rng.dirichlet(np.ones(4), size=5), rng.normal(size=(5, 2))
    step_weights = np.array([1.0, 0.0, 1.0, 1.0, 0.0])
    loss, _ = hipi_bc.make_loss(policy)(params, obs, tasks, weights, actions, step_weights)
    expected = 0.0
    for m in range(5):
        for k in range(4):
            pred = np.asarray(policy.apply(params, obs[m], tasks[m, k]))
            expected += step_weights[m] * weights[m, k] * np.sum((pred - actions[m]) ** 2)
    np.testing.assert_allclose(loss, expected / step_weights.sum(), rtol=1e-5)


@pytest.mark.parametrize("posterior", ["sample", "weights"])
def test_relabeling_the_dataset_recovers_the_expert_goals(tmp_path, posterior):
    path = small_dataset(tmp_path, n=100)
    args = hipi_bc.Args(dataset=path, relabel_batch_size=32, posterior=posterior)
    data = ds.load(path)
    train = hipi_bc.make_train(args, data)
    state = jax.jit(train.init)(jax.random.key(0), *train.shared)
    # 100 = 3·32 + 4: a padded batch
    assert float(state.relabel_info["relabel/label_accuracy"]) == 1.0
    weights = np.asarray(state.labels.weights)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-5)
    best = np.asarray(state.labels.tasks)[np.arange(100), weights.argmax(axis=1)]
    np.testing.assert_allclose(best, data.task_labels, atol=1e-6)


@pytest.mark.parametrize("partition, bias", [(True, 0.0), (False, 0.0), (True, 1.5), (False, 1.5)])
def test_dataset_posterior_weights_equal_numpy_over_one_batch(tmp_path, partition, bias):
    """With one relabeling batch holding every trajectory, log Z runs over the whole dataset
    and each trajectory's weights must equal the NumPy posterior, whatever the shuffle."""
    path = small_dataset(tmp_path, n=20)
    args = hipi_bc.Args(
        dataset=path,
        posterior="weights",
        relabel_batch_size=64,
        partition=partition,
        reward_bias=bias,
    )
    env = envs.make("pointnav", num_goals=4)
    goals, features, mask, data = goal_set_data(6, b=24)
    relabel, _ = hipi_bc.make_relabel(args, env.family, 24, has_labels=False)
    labels, _ = jax.jit(relabel)(jax.random.key(3), data)
    expected = numpy_posterior(numpy_returns(goals, features, mask, 0.1, bias), partition)
    np.testing.assert_allclose(labels.weights, expected, atol=1e-5)
    np.testing.assert_allclose(labels.tasks, np.broadcast_to(goals, (24, 4, 2)))


@pytest.mark.parametrize("partition", [True, False])
def test_padding_rows_stay_out_of_log_z(tmp_path, partition):
    """24 trajectories in batches of 16: dealt round 2 batches, 12 each, and 4 padding
    rows in each. Each trajectory's weights must equal the NumPy posterior over its own
    batch's 12 trajectories alone; a log Z over the padding rows fails this."""
    args = hipi_bc.Args(
        dataset=small_dataset(tmp_path, n=20),
        posterior="weights",
        relabel_batch_size=16,
        partition=partition,
    )
    env = envs.make("pointnav", num_goals=4)
    goals, features, mask, data = goal_set_data(8, b=24)
    key = jax.random.key(3)
    relabel, _ = hipi_bc.make_relabel(args, env.family, 24, False)
    labels, _ = jax.jit(relabel)(key, data)
    order = np.asarray(jax.random.permutation(jax.random.split(key)[0], 24))
    returns = numpy_returns(goals, features, mask, 0.1)
    for rows in (order[0::2], order[1::2]):  # dealt round: batch b holds slots b, b + 2, ...
        expected = numpy_posterior(returns[rows], partition)
        np.testing.assert_allclose(np.asarray(labels.weights)[rows], expected, atol=1e-5)


def test_minibatch_rows_follow_alg1_over_the_minibatch_with_repeats(tmp_path):
    """Alg. 1 on a sampled minibatch: rows may repeat a trajectory (steps are sampled, not
    trajectories) and each repeat counts in log Z; rows marked invalid (held-out or
    padding steps) do not. Weights per row against NumPy."""
    args = hipi_bc.Args(dataset=small_dataset(tmp_path, n=20), posterior="weights")
    env = envs.make("pointnav", num_goals=4)
    goals, features, mask, data = goal_set_data(9, b=10)
    _, relabel_rows = hipi_bc.make_relabel(args, env.family, 10, False)
    index = np.array([3, 3, 7, 1, 3, 0, 9, 9, 2, 5, 5, 8])
    valid = np.array([1, 1, 1, 1, 1, 0, 1, 1, 1, 0, 1, 1], bool)
    tasks, weights, _ = jax.jit(relabel_rows)(
        jax.random.key(0), data, jnp.asarray(index), jnp.asarray(valid)
    )
    returns = numpy_returns(goals, features, mask, 0.1)[index]
    log_z = np.log(np.exp(returns[valid]).mean(axis=0))
    q = np.exp(returns - log_z)
    np.testing.assert_allclose(weights, q / q.sum(axis=1, keepdims=True), atol=1e-5)
    np.testing.assert_allclose(tasks, np.broadcast_to(goals, (12, 4, 2)))


@pytest.mark.parametrize("relabel", ["inverse_rl", "oracle"])
def test_minibatch_redraw_changes_the_first_epoch(tmp_path, relabel):
    """--redraw minibatch trains its first epoch on draws of its own; --redraw epoch trains
    it on init's labels. Same seed: the parameters differ, unless the labels are fixed."""
    path = small_dataset(tmp_path, n=40, num_goals=0)
    params = {}
    for redraw in ("minibatch", "epoch"):
        args = hipi_bc.Args(dataset=path, relabel=relabel, redraw=redraw, hidden_sizes=(16,))
        train = hipi_bc.make_train(args, ds.load(path))
        (device_data,) = train.shared
        state = jax.jit(train.init)(jax.random.key(0), device_data)
        params[redraw] = jax.jit(train.train_chunk)(state, device_data)[0].params
    same = jax.tree.leaves(jax.tree.map(np.array_equal, params["minibatch"], params["epoch"]))
    assert all(same) == (relabel == "oracle")


@pytest.mark.parametrize("relabel", ["inverse_rl", "random", "oracle"])
def test_labels_are_redrawn_every_epoch_after_the_first(tmp_path, relabel):
    """Alg. 3 draws ψ̃ anew as it trains: inverse_rl and random labels change from epoch to
    epoch (continuous goals: a draw never repeats), the true labels do not."""
    path = small_dataset(tmp_path, n=40, num_goals=0)
    args = hipi_bc.Args(dataset=path, relabel=relabel, hidden_sizes=(16,), patience=100)
    train = hipi_bc.make_train(args, ds.load(path))
    (device_data,) = train.shared
    state = jax.jit(train.init)(jax.random.key(0), device_data)
    epoch = jax.jit(train.train_chunk)
    first, _ = epoch(state, device_data)
    np.testing.assert_array_equal(first.labels.tasks, state.labels.tasks)  # epoch 1: init's
    second, _ = epoch(first, device_data)
    third, _ = epoch(second, device_data)
    changed = [
        np.mean(np.any(np.asarray(a.labels.tasks) != np.asarray(b.labels.tasks), axis=(1, 2)))
        for a, b in ((first, second), (second, third))
    ]
    if relabel == "oracle":
        assert changed == [0.0, 0.0]
    else:
        assert min(changed) > 0.5, changed


def test_early_stopping_freezes_a_seed_whose_validation_loss_rose(tmp_path):
    path = small_dataset(tmp_path, n=40)
    args = hipi_bc.Args(dataset=path, patience=1, hidden_sizes=(16,))
    train = hipi_bc.make_train(args, ds.load(path))
    (device_data,) = train.shared
    state = jax.jit(train.init)(jax.random.key(0), device_data)
    epoch = jax.jit(train.train_chunk)
    state, _ = epoch(state.replace(last_val_loss=jnp.float32(-1.0)), device_data)  # "rose"
    assert bool(state.stopped) and int(state.epochs) == 1
    frozen, _ = epoch(state, device_data)
    assert int(frozen.epochs) == 1
    jax.tree.map(np.testing.assert_array_equal, frozen.params, state.params)
    moving, _ = epoch(state.replace(stopped=jnp.asarray(False)), device_data)
    assert not np.allclose(
        moving.params["params"]["Dense_0"]["kernel"], state.params["params"]["Dense_0"]["kernel"]
    )


def bc_run(argv, parent):
    """hipi_bc.main on a command line; the run directory it made under `parent`."""
    hipi_bc.main(cli.parse(hipi_bc.Args, [*argv, "--run-dir", str(parent)]))
    (name,) = os.listdir(parent)
    return os.path.join(parent, name)


def test_hipi_bc_resumed_run_equals_uninterrupted_run(tmp_path):
    """--save-model, Ctrl-C after epoch 3, --resume: the same metrics.csv, number for number,
    as the run that was never stopped (the same programs run twice on this machine).
    Continuous goals, so that the final distance varies with the evaluation keys even
    while the policy succeeds nowhere."""
    path = small_dataset(tmp_path, n=40, num_goals=0)
    argv = [
        "--dataset", path, "--max-epochs", "4", "--patience", "10", "--hidden-sizes", "16",
        "--eval-every", "2", "--eval-episodes", "8", "--num-seeds", "2", "--quiet",
        "--save-model", "--checkpoint-every", "2",
    ]  # fmt: skip
    uninterrupted = bc_run(argv, tmp_path / "uninterrupted")
    original = RunLogger.progress

    def progress(self, step, **postfix):
        original(self, step, **postfix)
        if step == 3:
            raise KeyboardInterrupt

    RunLogger.progress = progress
    try:
        with pytest.raises(SystemExit) as exit_info:
            bc_run(argv, tmp_path / "interrupted")
    finally:
        RunLogger.progress = original
    assert exit_info.value.code == 130
    interrupted = os.path.join(tmp_path / "interrupted", os.listdir(tmp_path / "interrupted")[0])
    with open(os.path.join(interrupted, "checkpoint", "metadata.json")) as f:
        assert json.load(f)["chunk"] == 2
    hipi_bc.main(cli.parse(hipi_bc.Args, ["--resume", interrupted]))
    resumed, reference = read_metrics(interrupted), read_metrics(uninterrupted)
    assert resumed.keys() == reference.keys()
    assert {"eval/success_rate_best", "eval/final_distance", "relabel/posterior_entropy"} <= set(
        reference
    )
    for name in reference:
        if name != "charts/SPS":  # wall clock
            np.testing.assert_array_equal(resumed[name], reference[name], err_msg=name)


def test_oracle_without_labels_is_a_usage_error(tmp_path):
    path = small_dataset(tmp_path, n=20, labels=False)
    with pytest.raises(cli.UsageError, match="needs task labels"):
        hipi_bc.Args(dataset=path, relabel="oracle")


def test_command_line_reports_a_corrupt_dataset_in_one_sentence(tmp_path):
    path = tmp_path / "broken.npz"
    path.write_bytes(b"not a zip file at all")
    result = subprocess.run(
        [sys.executable, "algos/hipi_bc.py", "--dataset", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "truncated or not an npz archive" in result.stderr
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------- learning
@pytest.mark.slow
def test_hipi_bc_beats_task_agnostic_bc_on_a_goal_set(tmp_path):
    path = small_dataset(tmp_path, n=300, num_goals=4, labels=True)
    success = {}
    for relabel in ("inverse_rl", "none"):
        args = hipi_bc.Args(
            dataset=path,
            relabel=relabel,
            max_epochs=10,
            eval_every=10,
            eval_episodes=200,
            run_dir=str(tmp_path / "runs"),
            quiet=True,
        )
        success[relabel] = float(hipi_bc.main(args)["eval/success_rate_best"].mean())
    # measured: 1.00 and 0.10; a policy that ignores the goal can reach only what its
    # average action leads to, so it stays far below 0.5 with 4 goals
    assert success["inverse_rl"] >= 0.9
    assert success["none"] <= 0.4


# ---------------------------------------------------------------- a trained policy as demonstrator
def test_collect_demos_from_a_trained_run(tmp_path):
    """`collect_demos.py --checkpoint` rolls out a saved run's policy in its own env."""
    her = load_algo("her")
    her.main(
        her.Args(
            env_id="pointnav",
            env_kwargs=("num_goals=3",),
            relabel="none",
            num_envs=4,
            total_timesteps=400,
            num_chunks=1,
            learning_starts=40,
            batch_size=16,
            buffer_size=2000,
            hidden_sizes=(16,),
            eval_episodes=4,
            save_model=True,
            run_dir=str(tmp_path / "runs"),
            quiet=True,
        )
    )
    (run,) = (tmp_path / "runs").iterdir()
    out = str(tmp_path / "demos.npz")
    data = collect_demos.main(
        cli.parse(
            collect_demos.Args, ["--checkpoint", str(run), "--num-trajectories", "30", "--out", out]
        )
    )
    loaded = ds.load(out)
    assert loaded.num_trajectories == data.num_trajectories == 30
    assert loaded.env_id == "pointnav" and loaded.env_kwargs == {"num_goals": 3}
    assert np.abs(loaded.actions).max() <= 1.0


def test_collect_demos_refuses_a_run_without_checkpoint(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.parse(collect_demos.Args, ["--checkpoint", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "no checkpoint there" in capsys.readouterr().err


def test_collecting_quadruped_goals_with_the_direction_expert_is_refused():
    with pytest.raises(cli.UsageError, match="quadruped expert walks in a direction"):
        collect_demos.Args(env_id="quadruped")
