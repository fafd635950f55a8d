"""The shared run machinery: checkpoint and resume, the refusals of a bad resume,
evaluating a saved policy, plots, videos and offline W&B tracking."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ROOT, load_algo
from PIL import Image

import envs
from harness import cli, plot, tracking, training, video
from harness import evaluate_saved as evaluate_module
from harness.logger import RunLogger, read_metrics

ARGV = [
    "--env-kwargs",
    "n_bits=4",
    "--num-envs",
    "4",
    "--total-timesteps",
    "640",
    "--num-chunks",
    "4",
    "--learning-starts",
    "40",
    "--batch-size",
    "16",
    "--buffer-size",
    "1000",
    "--hidden-sizes",
    "16",
    "--eval-episodes",
    "8",
    "--num-seeds",
    "2",
    "--quiet",
    "--save-model",
    "--checkpoint-every",
    "2",
]
STEPS_PER_CHUNK = 160


def train(argv):
    module = load_algo("her_dqn")
    return module.main(cli.parse(module.Args, argv))


def only_run(parent):
    (name,) = os.listdir(parent)
    return os.path.join(parent, name)


def metrics_table(run_dir):
    """metrics.csv without the wall-clock column, rows in file order."""
    return {k: v for k, v in read_metrics(run_dir).items() if k != "charts/SPS"}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    parent = tmp_path_factory.mktemp("uninterrupted")
    train([*ARGV, "--run-dir", str(parent)])
    return only_run(parent)


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """A run stopped by Ctrl-C after logging chunk 3, its last checkpoint after chunk 2."""
    parent = tmp_path_factory.mktemp("interrupted")
    original = RunLogger.progress

    def progress(self, step, **postfix):
        original(self, step, **postfix)
        if step == 3 * STEPS_PER_CHUNK:
            raise KeyboardInterrupt

    RunLogger.progress = progress
    try:
        with pytest.raises(SystemExit) as exit_info:
            train([*ARGV, "--run-dir", str(parent)])
    finally:
        RunLogger.progress = original
    assert exit_info.value.code == 130
    return only_run(parent)


def test_interrupted_run_kept_its_last_checkpoint(interrupted):
    with open(os.path.join(interrupted, "checkpoint", "metadata.json")) as f:
        header = json.load(f)
    assert header["chunk"] == 2 and header["env_steps"] == 2 * STEPS_PER_CHUNK
    steps = read_metrics(interrupted)["step"]
    assert sorted(set(steps)) == [STEPS_PER_CHUNK, 2 * STEPS_PER_CHUNK, 3 * STEPS_PER_CHUNK]


def test_resumed_run_equals_uninterrupted_run(interrupted, uninterrupted, capsys):
    train(["--resume", interrupted])
    assert "resuming" in capsys.readouterr().out
    resumed, reference = metrics_table(interrupted), metrics_table(uninterrupted)
    # no gap and no duplicate: each chunk's step once per seed, in order
    expected_steps = np.repeat(np.arange(1, 5) * STEPS_PER_CHUNK, 2)
    np.testing.assert_array_equal(resumed["step"], expected_steps)
    assert resumed.keys() == reference.keys()
    for name in reference:  # exactly the same numbers, not merely close ones
        np.testing.assert_array_equal(resumed[name], reference[name], err_msg=name)
    with open(os.path.join(interrupted, "checkpoint", "metadata.json")) as f:
        assert json.load(f)["chunk"] == 4


def test_resuming_a_finished_run_does_nothing(uninterrupted, capsys):
    before = metrics_table(uninterrupted)
    train(["--resume", uninterrupted])
    assert "already finished" in capsys.readouterr().out
    after = metrics_table(uninterrupted)
    for name in before:
        np.testing.assert_array_equal(after[name], before[name])


def refused(argv, capsys, algo="her_dqn"):
    module = load_algo(algo)
    with pytest.raises(SystemExit) as exit_info:
        module.main(cli.parse(module.Args, argv))
    assert exit_info.value.code == 2
    return " ".join(capsys.readouterr().err.split())


def test_resume_with_a_changed_flag_is_refused(uninterrupted, capsys):
    err = refused(["--resume", uninterrupted, "--batch-size", "8"], capsys)
    assert "flags differ from the checkpoint's (batch_size=16 -> 8)" in err


def test_resume_by_another_algorithm_is_refused(uninterrupted, capsys):
    err = refused(["--resume", uninterrupted], capsys, algo="her")
    assert "has flags this script lacks" in err


def test_resume_of_a_foreign_checkpoint_is_refused(uninterrupted, tmp_path, capsys):
    fake = tmp_path / "run"
    os.makedirs(fake / "checkpoint")
    with open(os.path.join(uninterrupted, "args.json")) as f:
        flags = json.load(f)
    with open(fake / "args.json", "w") as f:
        json.dump(flags, f)
    with open(os.path.join(uninterrupted, "checkpoint", "metadata.json")) as f:
        header = json.load(f)
    with open(fake / "checkpoint" / "metadata.json", "w") as f:
        json.dump({**header, "algo": "hipi_rl"}, f)
    assert "it was trained by hipi_rl, not her_dqn" in refused(["--resume", str(fake)], capsys)


def test_resume_without_checkpoint_or_run_is_refused(tmp_path, capsys):
    assert "no such run directory" in refused(["--resume", str(tmp_path / "nope")], capsys)
    assert "has no args.json" in refused(["--resume", str(tmp_path)], capsys)
    module = load_algo("her_dqn")
    with open(tmp_path / "args.json", "w") as f:
        json.dump(training.RunArgs().__dict__ | {"env_id": "bitflip"}, f)
    with pytest.raises(SystemExit):
        cli.parse(module.Args, ["--resume", str(tmp_path)])
    assert "it has no checkpoint" in " ".join(capsys.readouterr().err.split())


def test_resume_of_a_corrupt_checkpoint_is_refused(uninterrupted, tmp_path, capsys):
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", uninterrupted, str(copy)], check=True)
    with open(copy / "checkpoint" / "metadata.json") as f:
        header = json.load(f)
    first_leaf = next(iter(header["crc32"]))
    header["crc32"][first_leaf] ^= 1
    with open(copy / "checkpoint" / "metadata.json", "w") as f:
        json.dump(header, f)
    err = refused(["--resume", str(copy)], capsys)
    assert "does not match the checksum saved with it" in err


# ---------------------------------------------------------------- a saved policy
def test_evaluate_saved_policy(uninterrupted, capsys):
    metrics = evaluate_module.main([uninterrupted, "--episodes", "16", "--capture-video"])
    out = capsys.readouterr().out
    assert "16 fresh episodes per seed" in out and "eval/success_rate" in out
    assert np.shape(metrics["eval/success_rate"]) == (2,)
    gif = os.path.join(uninterrupted, "videos", "evaluate_0.gif")
    assert Image.open(gif).n_frames >= 2
    # the same seed gives the same numbers; another seed other tasks
    again = evaluate_module.main([uninterrupted, "--episodes", "16"])
    np.testing.assert_array_equal(again["eval/episode_return"], metrics["eval/episode_return"])


def test_evaluate_refuses_a_run_without_checkpoint(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        evaluate_module.main([str(tmp_path)])
    assert exit_info.value.code == 2
    assert "no checkpoint at" in capsys.readouterr().err


# ---------------------------------------------------------------- plots
def test_plot_groups_two_runs(uninterrupted, tmp_path):
    other = tmp_path / "other"
    train([*ARGV[:-3], "--relabel", "none", "--run-dir", str(other)])
    out = str(tmp_path / "curves.png")
    plot.main([os.path.dirname(uninterrupted), str(other), "--group-by", "relabel", "--out", out])
    image = Image.open(out)
    assert image.format == "PNG" and image.size[0] > 100
    groups = plot.group_curves(
        plot.find_runs([os.path.dirname(uninterrupted), str(other)]), "eval/success_rate", "relabel"
    )
    assert set(groups) == {"relabel=future", "relabel=none"}
    steps, values = groups["relabel=none"]
    np.testing.assert_array_equal(steps, np.arange(1, 5) * STEPS_PER_CHUNK)
    assert values.shape == (4, 2)


def test_plot_refuses_unknown_flag(uninterrupted, capsys):
    with pytest.raises(SystemExit) as exit_info:
        plot.main([uninterrupted, "--group-by", "no_such_flag"])
    assert exit_info.value.code == 2
    assert "has no flag 'no_such_flag'" in capsys.readouterr().err


# ---------------------------------------------------------------- videos
def test_video_of_a_ten_step_episode(tmp_path):
    env = envs.make("pointnav", episode_length=10)
    policy = lambda obs, task, key: jnp.zeros_like(obs)  # noqa: E731  (never reaches the goal)
    states = video.record_episode(env, policy, jax.random.key(0))
    assert states.obs.shape == (11, 2)  # the first state and the ten states reached
    assert states.truncated[-1] and not states.truncated[:-1].any()
    path = video.save_episode(env, policy, jax.random.key(0), str(tmp_path / "v.gif"))
    gif = Image.open(path)
    assert gif.n_frames == 11 and gif.size == (240, 240)


def test_video_stops_at_termination_and_keeps_the_last_state(tmp_path):
    env = envs.make("bitflip", n_bits=6)
    flip_wrong_bit = lambda obs, task, key: jnp.argmax(obs != task, axis=-1)  # noqa: E731
    states = video.record_episode(env, flip_wrong_bit, jax.random.key(3))
    assert states.terminated[-1] and states.success[-1]
    np.testing.assert_array_equal(states.next_obs[-1], states.task[-1])  # not a reset state
    frames = env.render(states)
    assert frames.dtype == np.uint8 and frames.shape[0] == len(states.obs)


def test_video_of_an_env_without_renderer_says_why(tmp_path):
    class Blind(type(envs.make("pointnav"))):
        def render(self, states, width=240, height=240):
            raise envs.RenderError("Blind has no renderer")

    env = Blind()
    with pytest.raises(video.VideoError, match="Blind has no renderer"):
        video.save_episode(env, lambda o, t, k: o, jax.random.key(0), str(tmp_path / "v.gif"))
    assert not os.path.exists(tmp_path / "v.gif")


# ---------------------------------------------------------------- W&B
def test_track_offline_without_credentials(tmp_path):
    """No network and no credentials: --track must neither hang nor crash."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    environment["HOME"] = str(tmp_path)  # no ~/.netrc login
    cmd = [sys.executable, os.path.join(ROOT, "algos", "her_dqn.py"), *ARGV[:-3], "--track"]
    cmd += ["--run-dir", str(tmp_path / "runs")]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=environment)
    assert result.returncode == 0, result.stderr[-3000:]
    run = only_run(tmp_path / "runs")
    assert "W&B offline" in result.stdout
    assert any(d.startswith("offline-run-") for d in os.listdir(os.path.join(run, "wandb")))


def test_track_needs_wandb(monkeypatch, capsys):
    monkeypatch.setattr(tracking, "available", lambda: False)
    with pytest.raises(SystemExit) as exit_info:
        cli.parse(load_algo("her_dqn").Args, ["--track"])
    assert exit_info.value.code == 2
    assert "pip install wandb" in capsys.readouterr().err


def test_a_buffer_larger_than_memory_is_refused_before_allocating(tmp_path, capsys):
    argv = [*ARGV[:-3], "--buffer-size", str(4 * 10**9), "--run-dir", str(tmp_path)]
    err = refused(argv, capsys)
    assert "GiB of memory available; lower --buffer-size or --num-seeds" in err
    assert not os.listdir(tmp_path)  # nothing written
