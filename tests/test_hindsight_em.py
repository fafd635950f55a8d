"""Hindsight EM: the E-step against a NumPy reference on random buffers, the M-step
loss, invariants of the jitted loop, the command line, and learning on small tasks."""

import math
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import ROOT, load_algo

import envs
from common import buffer as rb
from harness import cli

SETTINGS = {"bitflip": ("n_bits=5",), "pointnav": ("dim=2",)}


def em():
    return load_algo("hindsight_em")


def tiny_args(env_id, **overrides):
    fields = dict(
        env_id=env_id,
        env_kwargs=SETTINGS[env_id],
        num_envs=4,
        trajectories_per_iter=4,
        total_timesteps=800,
        num_chunks=2,
        batch_size=16,
        gradient_steps=2,
        buffer_size=2000,
        hidden_sizes=(16,),
        eval_episodes=8,
        quiet=True,
    )
    fields.update(overrides)
    return em().Args(**fields)


# ---------------------------------------------------------------- E-step
def fill_buffer(env, num_envs, rows, key):
    """Random-policy experience in a buffer (wrapping around the ring), plus the episode
    id of every slot and the order in which rows were written."""
    module = em()
    state = jax.vmap(env.reset)(jax.random.split(key, num_envs))
    discrete = env.discrete
    example = module.Transition(
        obs=state.obs[0],
        task=state.task[0],
        action=jnp.zeros((), jnp.int32) if discrete else jnp.zeros((env.action_size,)),
        features=state.features[0],
    )
    capacity_rows = rows // 2 + 3  # the ring wraps: older episodes get overwritten
    buffer = rb.init(example, num_envs, capacity_rows * num_envs, env.episode_length)
    episode = np.full((capacity_rows, num_envs), -1)
    written_at = np.full(capacity_rows, -1)  # the time each ring row was last written
    current = np.arange(num_envs)
    for r in range(rows):
        key, act_key = jax.random.split(key)
        if discrete:
            action = jax.random.randint(act_key, (num_envs,), 0, env.num_actions)
        else:
            action = jax.random.uniform(act_key, (num_envs, env.action_size), minval=-1, maxval=1)
        nxt = jax.vmap(env.step)(state, action)
        transition = module.Transition(
            obs=state.obs, task=state.task, action=action, features=nxt.features
        )
        buffer = rb.insert(buffer, transition, state.t)
        episode[r % capacity_rows] = current
        written_at[r % capacity_rows] = r
        done = np.asarray(nxt.terminated | nxt.truncated)
        current = np.where(done, current + num_envs, current)
        state = nxt
    return buffer, episode, written_at


def reference_goal_candidates(features, episode, written_at, row, col, strategy):
    """Slow reference: the features a hindsight goal of slot (row, col) may come from."""
    same = (episode[:, col] == episode[row, col]) & (written_at >= 0)
    if strategy == "future":
        same &= written_at >= written_at[row]
    if strategy == "final":
        same &= written_at == written_at[same].max()
    return features[same, col]


ENV_CASES = {
    "bitflip": lambda: envs.make("bitflip", n_bits=4),  # short episodes ending at success
    "pointnav": lambda: envs.make(
        "pointnav", dim=2, margin=0.3, episode_length=12, terminate_on_success=True
    ),
}


@pytest.mark.parametrize("case", list(ENV_CASES))
@pytest.mark.parametrize("strategy", ["future", "final"])
def test_hindsight_goal_never_leaves_episode(case, strategy):
    env = ENV_CASES[case]()
    buffer, episode, written_at = fill_buffer(env, num_envs=3, rows=60, key=jax.random.key(0))
    index = rb.sample_index(buffer, jax.random.key(1), 512)
    batch = rb.gather(buffer, index)
    goal, weight, relabeled = em().hindsight_goals(
        jax.random.key(2), buffer, index, batch.task, env.family, strategy, 1.0
    )
    goal, weight = np.asarray(goal), np.asarray(weight)
    features = np.asarray(buffer.data.features)
    row, col = np.asarray(index.row), np.asarray(index.env)
    assert np.all(np.asarray(relabeled))
    for i in range(len(row)):
        candidates = reference_goal_candidates(
            features, episode, written_at, row[i], col[i], strategy
        )
        assert np.any(np.all(candidates == goal[i], axis=-1)), (i, strategy)
    # the proposal reaches its own goal: every importance weight p(R = 1 | τ, g) is 1
    np.testing.assert_array_equal(weight, 1.0)


@pytest.mark.parametrize("case", list(ENV_CASES))
def test_kept_commanded_goals_weighted_by_reaching_them(case):
    """With the final strategy, a kept goal's weight is whether its episode's last stored
    step solved it (NumPy reference), and relabeled rows have weight 1."""
    env = ENV_CASES[case]()
    buffer, episode, written_at = fill_buffer(env, num_envs=3, rows=60, key=jax.random.key(3))
    index = rb.sample_index(buffer, jax.random.key(4), 512)
    batch = rb.gather(buffer, index)
    goal, weight, relabeled = em().hindsight_goals(
        jax.random.key(5), buffer, index, batch.task, env.family, "final", 0.5
    )
    goal, weight, relabeled = np.asarray(goal), np.asarray(weight), np.asarray(relabeled)
    task, features = np.asarray(batch.task), np.asarray(buffer.data.features)
    row, col = np.asarray(index.row), np.asarray(index.env)
    np.testing.assert_array_equal(goal[~relabeled], task[~relabeled])
    np.testing.assert_array_equal(weight[relabeled], 1.0)
    for i in np.flatnonzero(~relabeled):
        (last,) = reference_goal_candidates(features, episode, written_at, row[i], col[i], "final")
        if case == "bitflip":
            expected = np.array_equal(last, task[i])
        else:
            distance = np.linalg.norm(np.asarray(last, np.float64) - task[i])
            if abs(distance - 0.3) <= 1e-5:
                continue  # NumPy and JAX may round it to opposite sides of the margin
            expected = distance <= 0.3
        assert weight[i] == float(expected), i
    assert 0.4 < relabeled.mean() < 0.6
    assert 0.0 < weight[~relabeled].mean() < 1.0  # both outcomes occur in this sample


# ---------------------------------------------------------------- M-step
def policy_and_batch(discrete, key, batch_size=64):
    obs_key, task_key, action_key, weight_key, init_key = jax.random.split(key, 5)
    obs = jax.random.normal(obs_key, (batch_size, 3))
    task = jax.random.normal(task_key, (batch_size, 2))
    if discrete:
        policy = em().Policy(num_actions=4, action_dim=1, hidden_sizes=(32,))
        action = jax.random.randint(action_key, (batch_size,), 0, 4)
    else:
        policy = em().Policy(num_actions=None, action_dim=2, hidden_sizes=(32,))
        action = jax.random.uniform(action_key, (batch_size, 2), minval=-1, maxval=1)
    weight = (jax.random.uniform(weight_key, (batch_size,)) < 0.7).astype(jnp.float32)
    params = policy.init(init_key, obs, task)
    return policy, params, obs, task, action, weight


@pytest.mark.parametrize("discrete", [True, False])
def test_em_loss_is_weighted_negative_log_likelihood(discrete):
    policy, params, obs, task, action, weight = policy_and_batch(discrete, jax.random.key(0))
    min_std = 0.05
    loss, info = em().make_em_loss(policy, discrete, min_std)(params, obs, task, action, weight)
    out = jax.tree.map(np.asarray, policy.apply(params, obs, task))
    action, weight = np.asarray(action, np.float64), np.asarray(weight, np.float64)
    if discrete:
        logits = out.astype(np.float64)
        log_softmax = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
        logp = log_softmax[np.arange(len(action)), action.astype(int)]
    else:
        mean, log_std = out
        std = np.maximum(np.exp(log_std.astype(np.float64)), min_std)
        logp = np.sum(
            -0.5 * ((action - mean) / std) ** 2 - np.log(std) - 0.5 * math.log(2 * math.pi), axis=-1
        )
    expected = -np.sum(weight * logp) / weight.sum()
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    assert float(info["em_loss"]) == float(loss)


@pytest.mark.parametrize("discrete", [True, False])
def test_m_step_loss_decreases_on_fixed_batch(discrete):
    policy, params, obs, task, action, weight = policy_and_batch(discrete, jax.random.key(1))
    loss_fn = em().make_em_loss(policy, discrete, 0.05)
    optimizer = optax.adam(1e-2)
    opt_state = optimizer.init(params)

    @jax.jit
    def step(params, opt_state):
        (loss, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params, obs, task, action, weight
        )
        updates, opt_state = optimizer.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state, loss

    losses = []
    for _ in range(200):
        params, opt_state, loss = step(params, opt_state)
        losses.append(float(loss))
    # 64 random targets, 32 hidden units: the fit must improve by a clear margin
    assert losses[-1] < losses[0] - 0.5, (losses[0], losses[-1])
    assert np.all(np.isfinite(losses))


# ---------------------------------------------------------------- invariants
@pytest.mark.parametrize("env_id", list(SETTINGS))
def test_train_chunk_traces_env_step_once(env_id, monkeypatch):
    args = tiny_args(env_id)
    env_class = type(em().make_env(args))
    calls = []
    original = env_class.step_batch

    def counting_step(self, state, action):
        calls.append(1)
        return original(self, state, action)

    monkeypatch.setattr(env_class, "step_batch", counting_step)
    trainer = em().make_train(args)
    state = jax.jit(jax.vmap(trainer.init))(jax.vmap(jax.random.key)(jnp.arange(1)))
    chunk = jax.jit(jax.vmap(trainer.train_chunk))
    state, _ = chunk(state)
    traced = len(calls)
    for _ in range(2):
        state, _ = chunk(state)
    assert traced == 1
    assert len(calls) == traced


@pytest.mark.parametrize("env_id", list(SETTINGS))
def test_same_seed_is_identical_and_seeds_differ(env_id):
    args = tiny_args(env_id)
    trainer = em().make_train(args)
    keys = jax.vmap(jax.random.key)(jnp.array([3, 4]))
    init, chunk = jax.jit(jax.vmap(trainer.init)), jax.jit(jax.vmap(trainer.train_chunk))

    def run():  # the same compiled programs on the same inputs, twice: identical bits
        state = init(keys)
        for _ in range(2):
            state, metrics = chunk(state)
        return state, metrics

    (state, metrics), (again, _) = run(), run()

    def leaves(state):
        return [
            np.asarray(x)
            for x in jax.tree.leaves(state)
            if not jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
        ]

    assert all(np.array_equal(x, y) for x, y in zip(leaves(state), leaves(again), strict=True))
    params = [np.asarray(x) for x in jax.tree.leaves(state.params)]
    assert all(not np.array_equal(x[0], x[1]) for x in params if x[0].size > 1)
    assert all(np.all(np.isfinite(x)) for x in params)
    for value in jax.tree.leaves(metrics):
        assert np.all(np.isfinite(np.asarray(value)))


def test_policy_closure_acts_deterministically_on_a_batch():
    args = tiny_args("pointnav")
    trainer = em().make_train(args)
    state = jax.jit(trainer.init)(jax.random.key(0))
    obs, task = state.env_state.obs, state.env_state.task
    act = trainer.policy(state)
    first = act(obs, task, jax.random.key(1))
    second = act(obs, task, jax.random.key(2))
    assert first.shape == (args.num_envs, 2)
    np.testing.assert_array_equal(np.asarray(first), np.asarray(second))
    assert np.all(np.abs(np.asarray(first)) <= 1.0)


# ---------------------------------------------------------------- command line
@pytest.mark.parametrize("env_id", list(SETTINGS))
def test_script_runs_from_the_command_line(env_id, tmp_path):
    cmd = [
        sys.executable,
        os.path.join(ROOT, "algos", "hindsight_em.py"),
        "--env-id",
        env_id,
        "--env-kwargs",
        *SETTINGS[env_id],
        "--num-envs",
        "4",
        "--trajectories-per-iter",
        "4",
        "--total-timesteps",
        "800",
        "--num-chunks",
        "2",
        "--batch-size",
        "16",
        "--gradient-steps",
        "2",
        "--buffer-size",
        "2000",
        "--hidden-sizes",
        "16",
        "--eval-episodes",
        "8",
        "--num-seeds",
        "2",
        "--quiet",
        "--run-dir",
        str(tmp_path),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = os.listdir(tmp_path)
    assert run.startswith(f"{env_id}__hindsight_em__1__")
    files = set(os.listdir(tmp_path / run))
    assert {"metrics.csv", "args.json"} <= files
    assert "eval success" in result.stdout + result.stderr


BAD_INPUT = [
    (["--env-id", "nope"], "unknown env id"),
    (["--num-envs", "0"], "--num-envs must be positive"),
    (["--trajectories-per-iter", "0"], "--trajectories-per-iter must be positive"),
    (["--batch-size", "4000", "--buffer-size", "2000"], "larger than the buffer"),
    (["--relabel-prob", "1.5"], "--relabel-prob must be in [0, 1]"),
    (["--random-eps", "-0.1"], "--random-eps must be in [0, 1]"),
    (["--min-std", "0"], "--min-std positive"),
    (["--init-std", "0.01"], "--init-std at least --min-std"),
    (["--total-timesteps", "1000", "--num-chunks", "20"], "less than one iteration"),
    (["--env-kwargs", "bogus=1"], "bad --env-kwargs"),
    (["--env-kwargs", "oops"], "name=value"),
    (["--env-id", "pointnav", "--env-kwargs", "num_goals=4"], "achieved by states"),
]


@pytest.mark.parametrize("argv,message", BAD_INPUT)
def test_bad_input_exits_2_with_one_sentence(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.parse(em().Args, argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in " ".join(err.split())
    assert err.count("\n") == 1


def test_bad_input_exits_before_compiling():
    cmd = [sys.executable, os.path.join(ROOT, "algos", "hindsight_em.py"), "--num-envs", "0"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "--num-envs must be positive" in result.stderr


# ---------------------------------------------------------------- learning
@pytest.mark.slow
def test_em_solves_bitflip_10(tmp_path):
    args = em().Args(
        env_id="bitflip",
        env_kwargs=("n_bits=10",),
        num_seeds=2,
        total_timesteps=30_000,
        num_chunks=3,
        eval_episodes=200,
        buffer_size=100_000,
        quiet=True,
        run_dir=str(tmp_path),
    )
    success = np.asarray(em().main(args)["eval/success_rate"])
    assert np.all(success >= 0.9), success


@pytest.mark.slow
def test_em_solves_pointnav_2d(tmp_path):
    args = em().Args(
        env_id="pointnav",
        env_kwargs=("dim=2",),
        num_seeds=2,
        learning_rate=1e-4,  # the point-navigation setting of experiments/hindsight_em_scaling.py
        gradient_steps=64,
        total_timesteps=40_000,
        num_chunks=2,
        eval_episodes=200,
        buffer_size=100_000,
        quiet=True,
        run_dir=str(tmp_path),
    )
    success = np.asarray(em().main(args)["eval/success_rate"])
    assert np.all(success >= 0.9), success


# ---------------------------------------------------------------- image observations
IMAGE_ENVS = {
    "pointnav": lambda: envs.make("pointnav", dim=2),
    "four_rooms": lambda: envs.make("four_rooms"),
}


@pytest.mark.parametrize("case", list(IMAGE_ENVS))
def test_image_is_a_deterministic_function_of_the_state(case):
    from envs.image import ImageObs

    env = ImageObs(IMAGE_ENVS[case]())
    keys = jax.random.split(jax.random.key(0), 6)
    state = jax.jit(jax.vmap(env.reset))(keys)
    step = jax.jit(jax.vmap(env.step))
    for i in range(5):
        action = jax.random.uniform(jax.random.key(i), (6, 2), minval=-1, maxval=1)
        state = step(state, action)
        # the picture depends on the position only: redrawing it gives the same pixels,
        # under jit and vmap as outside (up to float rounding of differently fused programs)
        again = jax.jit(jax.vmap(env.draw))(state.features)
        np.testing.assert_allclose(np.asarray(state.next_obs), np.asarray(again), atol=1e-6)
        single = env.draw(state.features[0])
        np.testing.assert_allclose(np.asarray(single), np.asarray(again[0]), atol=1e-6)
    obs = np.asarray(state.obs).reshape(6, *env.image_shape)
    assert obs.shape[1:] == (32, 32, 1) and env.observation_size == 32 * 32
    assert obs.min() >= 0.0 and obs.max() <= 1.0
    # different positions give different pictures; the task and key do not enter
    assert not np.array_equal(obs[0], obs[1])
    moved = state.replace(task=state.task[::-1], key=state.key[::-1])
    np.testing.assert_allclose(  # pixels in [0, 1] from another program: a few ulps
        np.asarray(jax.vmap(env.draw)(moved.features)), np.asarray(state.obs), atol=1e-6
    )


def test_image_puts_the_agent_where_it_is():
    from envs.image import ImageObs, image_of

    env = ImageObs(envs.make("pointnav", dim=2))
    for position in ([-0.9, 0.5], [0.3, -0.7], [0.0, 0.0]):
        image = np.asarray(image_of(env, jnp.asarray(position, jnp.float32)))
        row, col = np.unravel_index(image.argmax(), image.shape)
        # pixel centres: column j shows x = -1 + (j + 0.5) / 16, row i shows y likewise
        assert abs(-1 + (col + 0.5) / 16 - position[0]) <= 1 / 16 + 1e-6
        assert abs(-1 + (row + 0.5) / 16 - position[1]) <= 1 / 16 + 1e-6
    rooms = ImageObs(envs.make("four_rooms"))
    walls = np.asarray(image_of(rooms, jnp.asarray([0.5, 0.5]))) == 0.5
    assert 0.05 < walls.mean() < 0.4  # the wall pixels of the map are drawn
    # the agent's start corner (0, 0) is free floor, shown brightest at the first pixel
    assert np.asarray(image_of(rooms, jnp.zeros(2))).argmax() == 0


def test_image_obs_refuses_envs_it_cannot_draw(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.parse(em().Args, ["--env-id", "pointnav", "--env-kwargs", "dim=3", "--image-obs"])
    assert exit_info.value.code == 2
    assert "pointnav with dim=2 and four_rooms only" in capsys.readouterr().err


def test_image_obs_trains_through_the_conv_encoder():
    args = tiny_args("pointnav", image_obs=True)
    trainer = em().make_train(args)
    state = jax.jit(jax.vmap(trainer.init))(jax.vmap(jax.random.key)(jnp.arange(2)))
    assert state.buffer.data.obs.shape[-1] == 32 * 32
    assert "ConvEncoder_0" in state.params["params"]
    state, metrics = jax.jit(jax.vmap(trainer.train_chunk))(state)
    evaluation = jax.jit(jax.vmap(trainer.evaluate))(state, jax.random.split(jax.random.key(0), 2))
    for value in jax.tree.leaves((metrics, evaluation)):
        assert np.all(np.isfinite(np.asarray(value)))
    # pictures are stored as uint8 and read back within one grey level
    obs = np.asarray(state.buffer.data.obs)
    assert obs.dtype == np.uint8 and obs.max() > 200


# ---------------------------------------------------------------- hybrid EM + HER
def test_hybrid_policy_loss_is_lambda_em_plus_her_actor_loss():
    args = tiny_args("pointnav", her_critic=True, em_coef=0.3)
    trainer = em().make_train(args)
    state = jax.jit(jax.vmap(trainer.init))(jax.vmap(jax.random.key)(jnp.arange(2)))
    before = state.critic.params
    state, metrics = jax.jit(jax.vmap(trainer.train_chunk))(state)
    m = {k: np.asarray(v, np.float64) for k, v in metrics.items()}
    # losses are means over steps, so the linear combination holds for the logged means
    np.testing.assert_allclose(
        m["losses/policy_loss"], 0.3 * m["losses/em_loss"] + m["losses/her_actor_loss"], rtol=1e-4
    )
    assert np.all(m["losses/critic_loss"] > 0) and np.all(np.isfinite(m["losses/q_values"]))
    changed = jax.tree.map(lambda a, b: not np.array_equal(a, b), before, state.critic.params)
    assert all(jax.tree.leaves(changed))
    assert state.buffer.data.next_obs.shape[-1] == 2


def test_pure_em_keeps_no_critic_and_no_next_obs():
    state = jax.jit(em().make_train(tiny_args("pointnav")).init)(jax.random.key(0))
    assert state.critic is None and state.buffer.data.next_obs is None


def test_hybrid_needs_continuous_actions(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.parse(em().Args, ["--env-id", "bitflip", "--her-critic"])
    assert exit_info.value.code == 2
    assert "needs continuous actions" in capsys.readouterr().err
