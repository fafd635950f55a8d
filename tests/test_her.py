"""HER (DDPG and DQN): relabeling against a NumPy reference, invariants of the
jitted loop, the command line, and learning on small tasks."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ROOT, load_algo

import envs
from common import buffer as rb
from harness import cli, training

ALGOS = {"her_dqn": ("bitflip", ("n_bits=5",)), "her": ("pointnav", ("dim=2",))}


def tiny_args(name, **overrides):
    env_id, env_kwargs = ALGOS[name]
    fields = dict(
        env_id=env_id,
        env_kwargs=env_kwargs,
        num_envs=4,
        total_timesteps=400,
        num_chunks=2,
        learning_starts=40,
        batch_size=16,
        buffer_size=2000,
        hidden_sizes=(16,),
        eval_episodes=8,
        quiet=True,
    )
    fields.update(overrides)
    return load_algo(name).Args(**fields)


# ---------------------------------------------------------------- relabeling
def fill_buffer(env, num_envs, rows, key):
    """Random-policy experience in a buffer, plus the episode id of every slot."""
    module = load_algo("her")
    state = jax.vmap(env.reset)(jax.random.split(key, num_envs))
    example = module.Transition(
        obs=state.obs[0],
        task=state.task[0],
        action=jnp.zeros((env.action_size,)),
        next_obs=state.obs[0],
        features=state.features[0],
    )
    buffer = rb.init(example, num_envs, rows * num_envs, env.episode_length)
    episode = np.zeros((rows, num_envs), int)
    current = np.arange(num_envs)
    for r in range(rows):
        key, act_key = jax.random.split(key)
        action = jax.random.uniform(act_key, (num_envs, env.action_size), minval=-1, maxval=1)
        nxt = jax.vmap(env.step)(state, action)
        transition = module.Transition(
            obs=state.obs,
            task=state.task,
            action=action,
            next_obs=nxt.next_obs,
            features=nxt.features,
        )
        buffer = rb.insert(buffer, transition, state.t)
        episode[r] = current
        done = np.asarray(nxt.terminated | nxt.truncated)
        current = np.where(done, current + num_envs, current)
        state = nxt
    return buffer, episode


@pytest.mark.parametrize("strategy", ["future", "final", "episode"])
@pytest.mark.parametrize("convention", ["-1/0", "0/1"])
def test_relabeled_reward_and_termination_recomputed_for_the_new_goal(strategy, convention):
    module = load_algo("her")
    env = envs.make("pointnav", dim=2, margin=0.3, episode_length=12, terminate_on_success=True)
    buffer, episode = fill_buffer(env, num_envs=3, rows=40, key=jax.random.key(0))
    index = rb.sample_index(buffer, jax.random.key(1), 512)
    batch = rb.gather(buffer, index)
    task, relabeled = module.relabel_her(
        jax.random.key(2), buffer, index, batch, env.family, strategy, 0.8
    )
    reward, terminated = module.goal_reward(
        env.family, batch.features, batch.action, task, convention, env.terminate_on_success
    )
    task, relabeled = np.asarray(task), np.asarray(relabeled)
    features = np.asarray(buffer.data.features)
    row, col = np.asarray(index.row), np.asarray(index.env)
    # reference: the reward of the state reached, for the goal now attached
    distance = np.linalg.norm(np.asarray(batch.features, np.float64) - task, axis=-1)
    hit = distance <= 0.3
    expected = hit - 1.0 if convention == "-1/0" else hit.astype(float)
    # NumPy and JAX may round a distance within a few ulps of the margin to opposite
    # sides of it; 1e-5 is hundreds of float32 ulps at 0.3.
    clear = np.abs(distance - 0.3) > 1e-5
    assert clear.mean() > 0.99
    np.testing.assert_array_equal(np.asarray(reward)[clear], expected[clear])
    np.testing.assert_array_equal(np.asarray(terminated)[clear], hit[clear])
    # kept goals are the commanded ones; new goals are achieved in the same episode
    np.testing.assert_array_equal(task[~relabeled], np.asarray(batch.task)[~relabeled])
    for i in np.flatnonzero(relabeled):
        same_episode = episode[:, col[i]] == episode[row[i], col[i]]
        candidates = features[same_episode, col[i]]
        if strategy == "future":
            candidates = features[same_episode & (np.arange(len(episode)) >= row[i]), col[i]]
        assert np.any(np.all(candidates == task[i], axis=-1)), i
    assert 0.7 < relabeled.mean() < 0.9


# ---------------------------------------------------------------- invariants
@pytest.mark.parametrize("name", list(ALGOS))
def test_train_chunk_traces_env_step_once(name, monkeypatch):
    args = tiny_args(name)
    env_class = type(load_algo(name).make_env(args))
    calls = []
    original = env_class.step_batch

    def counting_step(self, state, action):
        calls.append(1)
        return original(self, state, action)

    monkeypatch.setattr(env_class, "step_batch", counting_step)
    trainer = load_algo(name).make_train(args)
    keys = training.seed_keys(0, 1)
    state = jax.jit(jax.vmap(trainer.init))(keys)
    chunk = jax.jit(jax.vmap(trainer.train_chunk))
    state, _ = chunk(state)
    traced = len(calls)
    for _ in range(3):
        state, _ = chunk(state)
    assert traced == 1
    assert len(calls) == traced


@pytest.mark.parametrize("name", list(ALGOS))
def test_same_seed_is_identical_and_seeds_differ(name):
    args = tiny_args(name)
    trainer = load_algo(name).make_train(args)
    keys = jax.vmap(jax.random.key)(jnp.array([3, 4]))
    init, chunk = jax.jit(jax.vmap(trainer.init)), jax.jit(jax.vmap(trainer.train_chunk))

    def run():  # the same compiled programs on the same inputs, twice: identical bits
        state = init(keys)
        for _ in range(2):
            state, metrics = chunk(state)
        leaves = [
            np.asarray(x)
            for x in jax.tree.leaves(state)
            if not jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
        ]
        return leaves, metrics

    (leaves, metrics), (again, _) = run(), run()
    params = [x for x in leaves if x.dtype == np.float32 and x.ndim >= 2]
    assert all(np.array_equal(x, y) for x, y in zip(leaves, again, strict=True))
    assert any(not np.array_equal(x[0], x[1]) for x in params)
    assert all(np.all(np.isfinite(x)) for x in params)
    for value in jax.tree.leaves(metrics):
        assert np.all(np.isfinite(np.asarray(value)))


# ---------------------------------------------------------------- command line
@pytest.mark.parametrize("name", list(ALGOS))
def test_script_runs_from_the_command_line(name, tmp_path):
    env_id, env_kwargs = ALGOS[name]
    cmd = [
        sys.executable,
        os.path.join(ROOT, "algos", f"{name}.py"),
        "--env-id",
        env_id,
        "--env-kwargs",
        *env_kwargs,
        "--num-envs",
        "4",
        "--total-timesteps",
        "400",
        "--num-chunks",
        "2",
        "--learning-starts",
        "40",
        "--batch-size",
        "16",
        "--buffer-size",
        "2000",
        "--hidden-sizes",
        "16",
        "--eval-episodes",
        "8",
        "--num-seeds",
        "2",
        "--quiet",
        "--save-model",
        "--run-dir",
        str(tmp_path),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = os.listdir(tmp_path)
    assert run.startswith(f"{env_id}__{name}__1__")
    files = set(os.listdir(tmp_path / run))
    assert {"metrics.csv", "args.json", "checkpoint"} <= files
    assert any(f.startswith("events.out.tfevents") for f in files)
    assert "eval success" in result.stdout + result.stderr


BAD_INPUT = [
    (["--env-id", "nope"], "unknown env id"),
    (["--num-envs", "0"], "--num-envs must be positive"),
    (["--batch-size", "4000", "--buffer-size", "2000"], "larger than the buffer"),
    (["--buffer-size", "10", "--batch-size", "4"], "less than one episode"),
    (["--relabel-prob", "1.5"], "--relabel-prob must be in [0, 1]"),
    (["--env-kwargs", "bogus=1"], "bad --env-kwargs"),
    (["--env-kwargs", "oops"], "name=value"),
]


@pytest.mark.parametrize("name", list(ALGOS))
@pytest.mark.parametrize("argv,message", BAD_INPUT)
def test_bad_input_exits_2_with_one_sentence(name, argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.parse(load_algo(name).Args, argv)
    assert exit_info.value.code == 2
    assert message in " ".join(capsys.readouterr().err.split())


@pytest.mark.parametrize("name", list(ALGOS))
def test_wrong_action_space_is_refused(name, capsys):
    other = "pointnav" if name == "her_dqn" else "bitflip"
    with pytest.raises(SystemExit) as exit_info:
        cli.parse(load_algo(name).Args, ["--env-id", other])
    assert exit_info.value.code == 2
    assert "actions; use algos/" in capsys.readouterr().err


class _NoGoalFamily:
    task_dim = 2
    tasks = None


@pytest.mark.parametrize("name", list(ALGOS))
def test_goal_strategy_needs_achieved(name, monkeypatch, capsys):
    env_id, env_kwargs = ALGOS[name]
    env = envs.make(env_id, **cli.parse_env_kwargs(env_kwargs))
    env.family = _NoGoalFamily()
    monkeypatch.setitem(envs._REGISTRY, "no_goals", lambda **kw: env)
    cli.make_env.cache_clear()  # each case registers its own no_goals env
    with pytest.raises(SystemExit) as exit_info:
        cli.parse(load_algo(name).Args, ["--env-id", "no_goals", "--relabel", "future"])
    assert exit_info.value.code == 2
    assert "--relabel none" in capsys.readouterr().err


@pytest.mark.parametrize(
    "name, old, new",
    [
        ("her", "--strategy", "--relabel"),
        ("her_dqn", "--strategy=none", "--relabel"),
        ("hindsight_em", "--strategy", "--relabel"),
        ("hipi_rl", "--no-clip-q", "--no-clip-target"),
        ("hipi_rl", "--clip-q", "--clip-target"),
        ("hipi_bc", "--no-normalize", "--no-normalize-obs"),
    ],
)
def test_an_old_flag_spelling_is_refused_with_the_new_one(name, old, new, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.parse(load_algo(name).Args, [old, "none"] if "=" not in old else [old])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err == f"error: {old.split('=')[0]} is now spelled {new}\n"


def test_bad_input_exits_before_compiling():
    cmd = [sys.executable, os.path.join(ROOT, "algos", "her.py"), "--env-id", "nope"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "valid ids are: bitflip, pointnav, four_rooms" in " ".join(result.stderr.split())


# ---------------------------------------------------------------- reward convention
def test_zero_one_rewards_are_the_family_rewards_plus_one():
    module = load_algo("her")
    env = envs.make("pointnav", dim=2, margin=0.3)
    rng = np.random.default_rng(0)
    features = jnp.asarray(rng.uniform(-1, 1, (256, 2)), jnp.float32)
    task = jnp.asarray(rng.uniform(-1, 1, (256, 2)), jnp.float32)
    action = jnp.asarray(rng.uniform(-1, 1, (256, 2)), jnp.float32)
    family = np.asarray(jax.vmap(env.family.reward)(features, action, task))
    minus, done_minus = module.goal_reward(env.family, features, action, task, "-1/0", True)
    plus, done_plus = module.goal_reward(env.family, features, action, task, "0/1", True)
    np.testing.assert_array_equal(np.asarray(minus), family)
    np.testing.assert_array_equal(np.asarray(plus), family + 1.0)
    np.testing.assert_array_equal(np.asarray(done_minus), np.asarray(done_plus))
    assert 0 < np.mean(family == 0.0) < 1  # both successes and failures occur


class _ConstantActor:
    def apply(self, params, obs, task):
        return jnp.zeros((obs.shape[0], 1))


class _TableCritic:
    """Q(s, g, a) = params[s]: obs holds the row index, so each row has its own Q."""

    def apply(self, params, obs, task, action):
        return params[obs[:, 0].astype(jnp.int32)]


@pytest.mark.parametrize("convention", ["-1/0", "0/1"])
@pytest.mark.parametrize("clip_target", [True, False])
def test_critic_target_clipping_follows_the_reward_convention(convention, clip_target):
    module = load_algo("her")
    args = tiny_args("her", reward_convention=convention, clip_target=clip_target, gamma=0.9)
    critic_loss, _ = module.make_losses(_ConstantActor(), _TableCritic(), args)
    rng = np.random.default_rng(1)
    batch = 64
    q = rng.uniform(-30, 30, batch).astype(np.float32)
    q_next = rng.uniform(-30, 30, batch).astype(np.float32)
    reward = rng.integers(0, 2, batch).astype(np.float32) - (convention == "-1/0")
    terminated = rng.uniform(size=batch) < 0.3
    obs = np.arange(batch, dtype=np.float32)[:, None]
    next_obs = obs + batch  # rows of q_next
    loss, info = critic_loss(
        jnp.asarray(q),
        None,
        jnp.asarray(np.concatenate([q, q_next])),
        jnp.asarray(obs),
        jnp.asarray(next_obs),
        jnp.zeros((batch, 2)),
        jnp.zeros((batch, 1)),
        jnp.asarray(reward),
        jnp.asarray(terminated),
    )
    target = reward + 0.9 * (1.0 - terminated) * q_next
    if clip_target:
        low, high = (-10.0, 0.0) if convention == "-1/0" else (0.0, 10.0)  # 1 / (1 - 0.9)
        target = np.clip(target, low, high)
    np.testing.assert_allclose(float(loss), np.mean((q - target) ** 2), rtol=1e-5)
    np.testing.assert_allclose(float(info["q_values"]), q.mean(), rtol=1e-5)


# ---------------------------------------------------------------- image observations
def test_image_observations_train_a_chunk_with_pixels_stored_as_uint8():
    module = load_algo("her")
    args = tiny_args("her", image_obs=True, total_timesteps=160, learning_starts=40)
    trainer = module.make_train(args)
    assert trainer.env.image_shape == (32, 32, 1)
    state = jax.jit(jax.vmap(trainer.init))(training.seed_keys(0, 2))
    assert state.buffer.data.obs.dtype == jnp.uint8
    assert state.buffer.data.obs.shape[-1] == 32 * 32
    conv = state.actor_params["params"]["ConvEncoder_0"]["Conv_0"]["kernel"]
    assert conv.shape == (2, 3, 3, 1, 16)
    assert "ConvEncoder_0" in state.critic_params["params"]
    before = np.asarray(conv)
    state, metrics = jax.jit(jax.vmap(trainer.train_chunk))(state)
    after = np.asarray(state.actor_params["params"]["ConvEncoder_0"]["Conv_0"]["kernel"])
    assert not np.array_equal(before, after)  # the encoder is trained through the actor
    written = np.asarray(state.buffer.data.obs[:, :20]).reshape(-1, 32 * 32)  # 20 rows written
    assert np.all(written.max(axis=1) > 0.75 * 255)  # each picture shows the blob's peak
    assert len(np.unique(written, axis=0)) > 20  # and the pictures follow the moving point
    for value in jax.tree.leaves(metrics):
        assert np.all(np.isfinite(np.asarray(value)))
    eval_metrics = jax.jit(jax.vmap(trainer.evaluate))(state, training.seed_keys(5, 2))
    assert np.all(np.isfinite(np.asarray(eval_metrics["eval/success_rate"])))


def test_image_observations_of_an_env_that_cannot_be_drawn_are_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.parse(
            load_algo("her").Args, ["--env-id", "pointnav", "--env-kwargs", "dim=3", "--image-obs"]
        )
    assert exit_info.value.code == 2
    assert "--image-obs: image observations are drawn for pointnav with dim=2" in " ".join(
        capsys.readouterr().err.split()
    )


# ---------------------------------------------------------------- the HER + EM hybrid
def test_hybrid_actor_loss_adds_lambda_times_the_m_step_loss_on_relabeled_rows():
    """actor loss(λ) = actor loss(0) + λ · mean over relabeled rows of ||π(s, g) − a||²,
    against NumPy; rows kept with their commanded goal do not count."""
    module = load_algo("her")
    rng = np.random.default_rng(4)
    obs, task = (jnp.asarray(rng.normal(size=(12, 2)), jnp.float32) for _ in range(2))
    stored = jnp.asarray(rng.uniform(-1, 1, (12, 2)), jnp.float32)
    relabeled = jnp.asarray(rng.uniform(size=12) < 0.7)
    losses = {}
    for coef in (0.0, 0.5):
        args = module.Args(em_coef=coef, hidden_sizes=(8,))
        actor = module.Actor(action_dim=2, hidden_sizes=(8,))
        critic = module.Critic(hidden_sizes=(8,))
        actor_params = actor.init(jax.random.key(0), obs[0], task[0])
        critic_params = critic.init(jax.random.key(1), obs[0], task[0], stored[0])
        _, actor_loss = module.make_losses(actor, critic, args)
        losses[coef], _ = actor_loss(actor_params, critic_params, obs, task, stored, relabeled)
    action = np.asarray(actor.apply(actor_params, obs, task), np.float64)
    error = np.sum((action - np.asarray(stored, np.float64)) ** 2, axis=1)
    mask = np.asarray(relabeled)
    expected = float(losses[0.0]) + 0.5 * error[mask].mean()
    np.testing.assert_allclose(float(losses[0.5]), expected, rtol=1e-5)  # float32 sums


def test_hybrid_trains_a_chunk_and_logs_its_m_step_loss(tmp_path):
    cmd = [sys.executable, "algos/her.py", "--total-timesteps", "2000", "--num-chunks", "1",
           "--learning-starts", "500", "--em-coef", "0.5", "--hidden-sizes", "16", "16",
           "--eval-episodes", "4", "--run-dir", str(tmp_path), "--quiet"]  # fmt: skip
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    (run,) = os.listdir(tmp_path)
    header = (tmp_path / run / "metrics.csv").read_text().splitlines()[0]
    assert "losses/em_loss" in header
