"""Data parallelism: the same run on 1 device, on several, and over two processes.

The device counts come from `XLA_FLAGS=--xla_force_host_platform_device_count=N`,
which must be set before JAX starts, so every multi-device run is a subprocess.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

import envs
from common import parallel
from envs.core import BitGoals
from harness import training
from harness.logger import read_metrics
from tests.conftest import ROOT, load_algo

# A few chunks of every kind of work: acting, inserting, sampling, relabeling, updates.
TINY = [
    "--num-envs", "16", "--batch-size", "32", "--buffer-size", "1600", "--learning-starts", "160",
    "--total-timesteps", "640", "--num-chunks", "1", "--eval-episodes", "8", "--quiet",
]  # fmt: skip
# Within a chunk the runs match to float rounding: XLA sums each gradient and mean in
# another order when they are split over devices. Later, sampling decisions made on
# nearly equal numbers can flip and training drifts apart like any chaotic system.
# Losses and other means over batches: RTOL, ATOL.
RTOL, ATOL = 2e-3, 2e-4


def _environment(devices: int) -> dict[str, str]:
    env = dict(os.environ)
    # The caller's flags too (e.g. --xla_cpu_max_isa=SSE4_2 reaches the runs).
    flags = os.environ.get("XLA_FLAGS", "")
    env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={devices}".strip()
    env["PYTHONPATH"] = ROOT
    return env


def _script(algo: str, flags: list[str], devices: int, run_dir: str, timeout=600):
    cmd = [sys.executable, os.path.join(ROOT, "algos", f"{algo}.py"), *flags, "--run-dir", run_dir]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env=_environment(devices)
    )


def _metrics(run_dir: str) -> dict[str, np.ndarray]:
    (run,) = glob.glob(os.path.join(run_dir, "*", "metrics.csv"))
    columns = read_metrics(os.path.dirname(run))
    columns.pop("charts/SPS")  # wall clock
    return columns


def _one_episode(flags: list[str], env_id: str = "pointnav") -> dict[str, float]:
    """How far each metric that is a mean over episodes may move in the run of `flags`
    (env `env_id` unless --env-id says otherwise): by one episode.

    The parameters of the two runs differ by rounding (RTOL above), so every episode's
    path moves a little; where a path passes the goal's margin, which of its steps reach
    the goal, whether its last one does and, where success ends an episode, its length
    can change. Such a metric is a mean over episodes of a per-episode value in [lo, hi],
    and one episode that changes moves it by (hi - lo) / episodes. Per episode of L steps,
    in common/evaluate.py (eval/) and the scripts' train_chunk (charts/): success in
    {0, 1}; time at goal = steps at goal / length, in [0, 1] (one step, 1 / L, is not
    enough: a shifted path enters and leaves the margin at other steps; 0.125 vs 0.115,
    2 steps of 4 episodes of 50, was seen); length in [1, L], or always L where success
    does not end the episode; return = L rewards within the family's reward bounds; final
    distance between the achieved and the commanded goal, in [0, the goal space's diameter].
    """

    def flag(name, default=None):
        return flags[flags.index(name) + 1] if name in flags else default

    env = envs.make(flag("--env-id", env_id))
    length = env.episode_length
    low, high = env.family.reward_bounds
    if isinstance(env.family, BitGoals):  # every bit wrong
        diameter = np.sqrt(env.family.n_bits)
    else:  # the diagonal of the goal box
        diameter = np.linalg.norm(np.subtract(env.family.goal_high, env.family.goal_low))
    per_episode = {
        "success_rate": 1.0,
        "time_at_goal": 1.0,
        "episode_length": length - 1.0 if env.terminate_on_success else 0.0,
        "episode_return": length * (high - low),
        "final_distance": float(diameter),
    }
    eval_episodes = int(flag("--eval-episodes"))
    tolerances = {f"eval/{k}": v / eval_episodes for k, v in per_episode.items()}
    # Training: the episodes that end within a chunk, at least floor(steps / L) per env.
    num_envs = int(flag("--num-envs"))
    steps = int(flag("--total-timesteps")) // num_envs // int(flag("--num-chunks"))
    training_episodes = max(num_envs * (steps // length), 1)
    for k in ("success_rate", "episode_return"):
        tolerances[f"charts/{k}"] = per_episode[k] / training_episodes
    return tolerances


def _assert_same_run(a: dict, b: dict, one_episode: dict[str, float]) -> None:
    """Means over episodes within `one_episode` (see `_one_episode`), the rest within RTOL."""
    assert a.keys() == b.keys()
    np.testing.assert_array_equal(a["step"], b["step"])
    for name in a:
        if name in one_episode:
            atol, rtol = one_episode[name] + ATOL, 0.0
        else:
            assert not name.startswith("eval/"), f"{name}: no tolerance for this metric yet"
            atol, rtol = ATOL, RTOL
        np.testing.assert_allclose(a[name], b[name], rtol=rtol, atol=atol, err_msg=name)


def _first_chunk(columns: dict) -> dict:
    first = columns["step"] == columns["step"].min()
    return {name: values[first] for name, values in columns.items()}


def test_state_is_split_by_env_and_parameters_are_replicated():
    module = load_algo("hipi_rl")
    trainer = module.make_train(module.Args(num_envs=16, buffer_size=1600))
    target = jax.eval_shape(jax.vmap(trainer.init), training.seed_keys(1, 2))
    mesh = parallel.make_mesh(1)
    shardings = parallel.state_shardings(target, mesh, seed_axis=True)
    assert shardings.env_state.obs.spec == P(None, "data")
    assert shardings.env_state.task.spec == P(None, "data")
    assert shardings.episode_return.spec == P(None, "data")
    assert shardings.buffer.data.obs.spec == P(None, None, "data")  # (seed, row, env, ...)
    assert shardings.buffer.step.spec == P(None, None, "data")
    assert shardings.buffer.pos.spec == P()
    for leaf in jax.tree.leaves((shardings.actor_params, shardings.critic_opt, shardings.key)):
        assert leaf.spec == P()
    assert parallel.has_env_axis(target)
    assert not parallel.has_env_axis({"params": target.actor_params})


def test_split_batch_without_a_mesh_changes_nothing():
    batch = {"obs": np.ones((4, 3), np.float32)}
    assert parallel.split_batch(batch) is batch


@pytest.fixture(scope="module")
def four_device_run(tmp_path_factory):
    """hipi_rl with inverse-RL relabeling, 2 seeds, envs and batches split over 4 devices."""
    run_dir = str(tmp_path_factory.mktemp("four"))
    done = _script("hipi_rl", [*TINY, "--num-seeds", "2", "--num-devices", "4"], 4, run_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "over 4 devices" in done.stdout
    return _metrics(run_dir)


def test_four_devices_match_one(four_device_run, tmp_path):
    done = _script("hipi_rl", [*TINY, "--num-seeds", "2", "--num-devices", "1"], 4, str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    one = _metrics(str(tmp_path))
    _assert_same_run(_first_chunk(one), _first_chunk(four_device_run), _one_episode(TINY))
    assert np.isfinite(one["losses/critic_loss"]).all()
    assert one["relabel/posterior_entropy"].min() > 0  # relabeling ran


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _two_processes(command: list[str], per_process=None, timeout=900) -> list[tuple[int, str, str]]:
    """`command` (+ `per_process(index)`) run as processes 0 and 1 of one run, 2 devices each,
    joined through a free port on localhost: [(exit code, stdout, stderr)] by process."""
    address = f"localhost:{_free_port()}"
    join = ["--num-processes", "2", "--coordinator-address", address]
    own = per_process or (lambda index: [])
    procs = [
        subprocess.Popen(
            [*command, *join, "--process-id", str(index), *own(index)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_environment(2),
        )
        for index in range(2)
    ]
    try:
        outputs = [p.communicate(timeout=timeout) for p in procs]
    finally:
        for p in procs:
            p.kill()
    return [(p.returncode, out, err) for p, (out, err) in zip(procs, outputs, strict=True)]


def test_two_processes_match_one(four_device_run, tmp_path):
    """Two processes of 2 devices each (gloo collectives on localhost) train the run
    of one process with 4 devices; process 0 writes the logs, process 1 none."""
    command = [sys.executable, os.path.join(ROOT, "algos", "hipi_rl.py"), *TINY, "--num-seeds", "2"]
    outputs = _two_processes(command, lambda index: ["--run-dir", str(tmp_path / f"p{index}")])
    for code, _, err in outputs:
        assert code == 0, err[-3000:]
    assert "over 4 devices" in outputs[0][1]
    assert not (tmp_path / "p1").exists()
    p0 = _metrics(str(tmp_path / "p0"))
    _assert_same_run(_first_chunk(p0), _first_chunk(four_device_run), _one_episode(TINY))


@pytest.mark.parametrize(
    ("algo", "flags"),
    [
        ("her_dqn", ["--env-id", "bitflip", "--total-timesteps", "400", "--learning-starts", "80"]),
        ("her", ["--env-id", "pointnav", "--total-timesteps", "400", "--learning-starts", "80"]),
        ("hindsight_em", ["--env-id", "pointnav", "--total-timesteps", "1600", "--her-critic"]),
        ("hpg", ["--env-id", "bitflip", "--env-kwargs", "n_bits=4", "--total-timesteps", "320"]),
    ],
)
def test_every_online_script_matches_on_two_devices(algo, flags, tmp_path):
    common = [*flags, "--num-envs", "8", "--num-chunks", "1", "--eval-episodes", "4", "--quiet"]
    runs = {}
    for devices in (1, 2):
        run_dir = str(tmp_path / str(devices))
        done = _script(algo, [*common, "--num-devices", str(devices)], 2, run_dir)
        assert done.returncode == 0, done.stderr[-3000:]
        assert ("over 2 devices" in done.stdout) == (devices == 2)
        runs[devices] = _metrics(run_dir)
    losses = [name for name in runs[1] if name.startswith("losses/")]
    assert losses and all(np.isfinite(runs[1][name]).all() for name in losses)
    assert any(np.abs(runs[1][name]).max() > 0 for name in losses)  # it learned
    _assert_same_run(runs[1], runs[2], _one_episode(common))


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--num-devices", "3"], "--num-envs 16 does not split evenly over 3 devices"),
        (["--num-devices", "8"], "--num-devices 8, but this run sees 4 device(s)"),
        (
            ["--num-devices", "4", "--eval-episodes", "10"],
            "--eval-episodes 10 does not split evenly over 4 devices",
        ),
        (["--num-processes", "2"], "--num-processes > 1 needs --coordinator-address"),
    ],
)
def test_impossible_layouts_are_refused_before_compiling(flags, message, tmp_path):
    done = _script("hipi_rl", [*TINY, *flags], 4, str(tmp_path), timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert message in done.stderr
    assert "compiled" not in done.stdout


EVAL_SHARDING = """
import jax
from common import parallel
from common.evaluate import evaluate
from envs import make

env = make("pointnav", dim=2)
seen = []


def policy(obs, task, key):
    jax.debug.inspect_array_sharding(obs, callback=lambda s: seen.append(s.spec))
    return jax.numpy.zeros((obs.shape[0], env.action_size))


with jax.set_mesh(parallel.make_mesh(4)):
    metrics = jax.jit(lambda key: evaluate(env, policy, key, 8))(jax.random.key(0))
print(seen[0], float(metrics["episode_length"]))
"""


def test_evaluation_episodes_are_split_over_devices():
    done = subprocess.run(
        [sys.executable, "-c", EVAL_SHARDING],
        capture_output=True,
        text=True,
        timeout=300,
        env=_environment(4),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    spec, length = done.stdout.split()
    assert spec == "P('data',)"  # each device rolls out 2 of the 8 episodes
    assert float(length) > 0


RESUMABLE = """
import sys
from harness import checkpoint, cli
from tests.conftest import load_algo

argv = sys.argv[1:]
if argv[0] == "--stop-after-first-chunk":  # Ctrl-C once the first checkpoint is written
    argv = argv[1:]
    save = checkpoint.save

    def save_then_stop(*args, **kwargs):
        save(*args, **kwargs)
        raise KeyboardInterrupt

    checkpoint.save = save_then_stop
module = load_algo("her_dqn")
module.main(cli.parse(module.Args, argv))
"""


def test_a_checkpoint_from_two_devices_resumes_on_one(tmp_path):
    flags = [
        "--env-id", "bitflip", "--num-envs", "8", "--total-timesteps", "320", "--num-chunks",
        "2", "--learning-starts", "40", "--eval-episodes", "4", "--num-seeds", "2", "--quiet",
        "--save-model", "--checkpoint-every", "1", "--num-devices", "2",
    ]  # fmt: skip

    def train(*argv):
        cmd = [sys.executable, "-c", RESUMABLE, *argv]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=_environment(2))

    done = train(*flags, "--run-dir", str(tmp_path / "whole"))
    assert done.returncode == 0, done.stderr[-3000:]
    stopped = train("--stop-after-first-chunk", *flags, "--run-dir", str(tmp_path / "split"))
    assert stopped.returncode == 130, stopped.stderr[-3000:]
    (run,) = glob.glob(str(tmp_path / "split" / "*"))
    resumed = train("--resume", run, "--num-devices", "1")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "over 2 devices" not in resumed.stdout
    whole, split = _metrics(str(tmp_path / "whole")), _metrics(str(tmp_path / "split"))
    np.testing.assert_array_equal(whole["step"], split["step"])
    first = whole["step"] == whole["step"].min()
    for name in whole:  # the first chunk ran on 2 devices both times; the second on 1 and 2
        np.testing.assert_array_equal(whole[name][first], split[name][first], err_msg=name)
    _assert_same_run(whole, split, _one_episode(flags))


CHECKPOINTED = [
    "--env-id", "bitflip", "--num-envs", "8", "--total-timesteps", "320", "--num-chunks", "2",
    "--learning-starts", "40", "--eval-episodes", "4", "--num-seeds", "2", "--quiet",
    "--save-model", "--checkpoint-every", "1",
]  # fmt: skip


@pytest.fixture(scope="module")
def two_process_checkpoints(tmp_path_factory):
    """her_dqn over two processes of 2 devices, saving after each of its 2 chunks: run
    whole, and run again stopped (both processes) once the first checkpoint is written."""
    root = tmp_path_factory.mktemp("two_process_checkpoints")
    command = [sys.executable, "-c", RESUMABLE]
    for name, stop in (("whole", []), ("split", ["--stop-after-first-chunk"])):
        run_dir = str(root / name)
        outputs = _two_processes([*command, *stop, *CHECKPOINTED, "--run-dir", run_dir])
        for code, _, err in outputs:
            assert code == (130 if stop else 0), err[-3000:]
        assert "over 4 devices" in outputs[0][1]
    (split,) = glob.glob(str(root / "split" / "*"))
    return root, split


def test_a_checkpoint_from_two_processes_resumes_in_two(two_process_checkpoints):
    root, split = two_process_checkpoints
    resumable = str(root / "resumed_in_two")
    shutil.copytree(split, resumable)
    outputs = _two_processes([sys.executable, "-c", RESUMABLE, "--resume", resumable])
    for code, _, err in outputs:
        assert code == 0, err[-3000:]
    assert all("resuming" in out for _, out, _ in outputs)
    whole = _metrics(str(root / "whole"))
    resumed = read_metrics(resumable)
    resumed.pop("charts/SPS")
    assert whole.keys() == resumed.keys()
    for name in whole:  # the same program on the same devices, from the same state
        np.testing.assert_array_equal(whole[name], resumed[name], err_msg=name)


def test_a_checkpoint_from_two_processes_resumes_in_one(two_process_checkpoints):
    root, split = two_process_checkpoints
    resumable = str(root / "resumed_in_one")
    shutil.copytree(split, resumable)
    cmd = [sys.executable, "-c", RESUMABLE, "--resume", resumable, "--num-devices", "1"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=_environment(2))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "over " not in done.stdout
    whole, resumed = _metrics(str(root / "whole")), read_metrics(resumable)
    resumed.pop("charts/SPS")
    np.testing.assert_array_equal(whole["step"], resumed["step"])
    _assert_same_run(whole, resumed, _one_episode(CHECKPOINTED))


def test_capture_video_is_refused_in_two_processes(tmp_path):
    command = [sys.executable, os.path.join(ROOT, "algos", "her_dqn.py"), *CHECKPOINTED]
    outputs = _two_processes([*command, "--capture-video", "--run-dir", str(tmp_path)], timeout=300)
    for code, out, err in outputs:
        assert code == 2, err[-2000:]
        assert "error: --capture-video is not supported in multi-process runs" in err
        assert "compiled" not in out
