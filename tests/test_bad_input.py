"""Bad command lines, datasets and checkpoints, given to every script as a new user would:
each is refused with one sentence on stderr and exit code 2, before anything compiles,
without a traceback and without writing, changing or deleting a file."""

import dataclasses
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

from common import dataset as ds

TINY_RUN = [
    "--env-kwargs", "n_bits=4", "--num-envs", "4", "--total-timesteps", "64",
    "--num-chunks", "1", "--learning-starts", "16", "--batch-size", "8",
    "--buffer-size", "64", "--hidden-sizes", "8", "--eval-episodes", "4",
    "--quiet", "--save-model",
]  # fmt: skip


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A finished her_dqn run with a checkpoint, copied into every case's directory."""
    parent = tmp_path_factory.mktemp("trained")
    cmd = [sys.executable, "algos/her_dqn.py", *TINY_RUN, "--run-dir", str(parent)]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, timeout=600)
    (name,) = os.listdir(parent)
    return parent / name


@pytest.fixture(scope="module")
def dataset_file(tmp_path_factory):
    """A valid pointnav (dim=2, 4 goals) dataset of 20 labelled trajectories."""
    rng = np.random.default_rng(0)
    n, t = 20, 50
    data = ds.Dataset(
        observations=rng.uniform(-1, 1, (n, t, 2)).astype(np.float32),
        actions=rng.uniform(-1, 1, (n, t, 2)).astype(np.float32),
        features=rng.uniform(-1, 1, (n, t, 2)).astype(np.float32),
        lengths=np.full(n, t, np.int32),
        env_id="pointnav",
        env_kwargs={"dim": 2, "num_goals": 4},
        task_labels=rng.uniform(-1, 1, (n, 2)).astype(np.float32),
    )
    path = tmp_path_factory.mktemp("dataset") / "demos.npz"
    ds.save(str(path), data)
    return path


# ---------------------------------------------------------------- damage done before a case
def largest_state_file(tmp):
    files = (tmp / "run" / "checkpoint" / "state").rglob("*")
    return max((p for p in files if p.is_file()), key=lambda p: p.stat().st_size)


def delete_a_state_file(tmp):
    """One of the files orbax's index is made of."""
    next((tmp / "run" / "checkpoint" / "state" / "d").iterdir()).unlink()


def truncate_a_state_file(tmp):
    path = largest_state_file(tmp)
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)


def garble_the_header(tmp):
    (tmp / "run" / "checkpoint" / "metadata.json").write_bytes(b"\x00{not json")


def garble_args_json(tmp):
    (tmp / "run" / "args.json").write_text("[1, 2")


def truncate_the_dataset(tmp):
    path = tmp / "demos.npz"
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)


def write_a_foreign_npz(tmp):
    np.savez(tmp / "demos.npz", x=np.zeros(3))


def widen_the_observations(tmp):
    """A well-formed dataset whose observations have 3 dims, where pointnav dim=2 has 2."""
    data = ds.load(str(tmp / "demos.npz"))
    obs = np.concatenate([data.observations, data.observations[..., :1]], axis=-1)
    ds.save(str(tmp / "demos.npz"), dataclasses.replace(data, observations=obs))


def make_a_file(tmp):
    (tmp / "a_file").write_text("not a directory")


# ---------------------------------------------------------------- the cases
# (script, argv, damage, what the sentence says). "{tmp}" is the case's own directory, "{run}"
# a copy of the trained run in it. Training scripts also get --run-dir {tmp}/runs, and
# hipi_bc.py --dataset {tmp}/demos.npz (a copy of the valid dataset), unless argv gives them.
def case(script, *argv, damage=None, says):
    name = " ".join([script, *argv] + ([f"[{damage.__name__}]"] if damage else []))
    return pytest.param(script, list(argv), damage, says, id=name)


CASES = [
    case("her", "--gamma", "1.5", says="--gamma must be in [0, 1), got 1.5"),
    case("her", "--learning-starts", "-5", says="--learning-starts must not be negative"),
    case("her", "--tau", "0", says="--tau must be in (0, 1], got 0.0"),
    case("her", "--hidden-sizes", "256", "0", says="--hidden-sizes must be positive, got 0"),
    case("her", "--action-l2", "nan", says="--action-l2 must be a finite number, got nan"),
    case("her", "--env-kwargs", "dim=abc", says="dim must be an integer ≥ 1, got 'abc'"),
    case("her", "--env-kwargs", "dim=2", "dim=3", says="--env-kwargs gives dim twice"),
    case("her", "--run-dir", "{tmp}/a_file", damage=make_a_file, says="is a file, not a dir"),
    case("her", "--gama", "0.5", says="unrecognized flag --gama (did you mean --gamma?)"),
    case("her_dqn", "--num-seeds", "0", says="--num-seeds must be positive, got 0"),
    case("her_dqn", "--num-envs", "0", says="--num-envs must be positive, got 0"),
    case("her_dqn", "--total-timesteps", "10", says="less than one step of every env per chunk"),
    case("her_dqn", "--num-devices", "0", says="--num-devices must be positive, got 0"),
    case("her_dqn", "--env-kwargs", "n_bits=0", says="n_bits must be an integer ≥ 1, got 0"),
    case("her_dqn", "--run-dir", "{tmp}/a_file/runs", damage=make_a_file, says="is a file"),
    case("her_dqn", "--resume", "{run}", damage=delete_a_state_file, says="is missing"),
    case("her_dqn", "--resume", "{run}", damage=truncate_a_state_file, says="bytes, not"),
    case("her_dqn", "--resume", "{run}", damage=garble_the_header, says="unreadable metadata"),
    case("her_dqn", "--resume", "{run}", damage=garble_args_json, says="args.json cannot be read"),
    case("her_dqn", "--resume", "{run}", "--batch-size", "4", says="batch_size=8 -> 4"),
    case("hipi_rl", "--max-grad-norm", "-1", says="--max-grad-norm must not be negative"),
    case("hipi_rl", "--buffer-size", "100", "--batch-size", "8", says="less than one episode"),
    case("hipi_rl", "--env-id", "nope", says="unknown env id 'nope'"),
    case("hipi_rl", "--env-id", "reacher", "--env-kwargs", "family=x", says="family must be"),
    case("hipi_rl", "--env-id", "four_rooms", "--env-kwargs", "margin=0", says="margin must"),
    case("hipi_rl", "--gamma", says="--gamma needs a value"),
    case("hipi_bc", "--dataset", "{tmp}", says="is a directory, not a dataset file"),
    case("hipi_bc", damage=truncate_the_dataset, says="is truncated"),
    case("hipi_bc", damage=write_a_foreign_npz, says="it is not a dataset file"),
    case("hipi_bc", damage=widen_the_observations, says="holds observations of 3 dims"),
    case("hipi_bc", "--validation-fraction", "1", says="must be in (0, 1), got 1.0"),
    case("hipi_bc", "--learning-rate", "-1e-3", says="--learning-rate must be positive"),
    case("hipi_bc", "--reward-bias", "inf", says="--reward-bias must be a finite number"),
    case("hipi_bc", "--run-dir", "{tmp}/a_file", damage=make_a_file, says="is a file"),
    case("hipi_bc", "--posterior", "all", says="--posterior must be one of sample, weights"),
    case("hipi_bc", "--checkpoint-every", "0", says="--checkpoint-every must be positive, got 0"),
    case("hipi_bc", "--no-normalize", says="--no-normalize is now spelled --no-normalize-obs"),
    case("hipi_bc", "--resume", "{tmp}", says="it has no args.json, so it is not a run"),
    case("hipi_bc", "--resume", "{run}", says="has flags this script lacks"),
    case("her", "--strategy", "none", says="--strategy is now spelled --relabel"),
    case("her", "--em-coef", "1", "--relabel", "none", says="--em-coef imitates actions"),
    case("hindsight_em", "--trajectories-per-iter", "0", says="must be positive, got 0"),
    case("hindsight_em", "--relabel", "episode", says="--relabel must be one of future, final"),
    case("hindsight_em", "--her-critic", says="needs continuous actions"),
    case("hindsight_em", "--env-id", "pointnav", "--gamma", "1.5", says="--gamma must be in"),
    case("hindsight_em", "--total-timesteps", "1000", says="less than one iteration"),
    case("hindsight_em", "--env-kwargs", "n_bits=x", says="n_bits must be an integer ≥ 1"),
    case("evaluate", says="missing required argument run"),
    case("evaluate", "{tmp}/nope", says="no run directory"),
    case("evaluate", "{tmp}/a_file", damage=make_a_file, says="is a file, not a run directory"),
    case("evaluate", "{tmp}", says="no checkpoint at"),
    case("evaluate", "{run}", damage=delete_a_state_file, says="is missing"),
    case("evaluate", "{run}", "--capture-video", damage=truncate_a_state_file, says="bytes"),
    case("evaluate", "{run}", "--episodes", "0", says="--episodes must be positive, got 0"),
    case("evaluate", "{run}", "--seed", "-1", says="--seed must be in [0, 4294967295]"),
]


def snapshot(root):
    """Every file and directory under root with its size and modification time."""
    found = {}
    for path in [root, *root.rglob("*")]:
        stat = path.lstat()
        found[str(path.relative_to(root))] = (stat.st_size, stat.st_mtime_ns)
    return found


@pytest.mark.parametrize("script,argv,damage,says", CASES)
def test_bad_input_is_refused_in_one_sentence_before_compiling_and_writes_nothing(
    script, argv, damage, says, tmp_path, trained_run, dataset_file
):
    shutil.copytree(trained_run, tmp_path / "run")
    shutil.copy(dataset_file, tmp_path / "demos.npz")
    os.makedirs(tmp_path / "runs")
    if damage is not None:
        damage(tmp_path)
    argv = [
        arg.replace("{tmp}", str(tmp_path)).replace("{run}", str(tmp_path / "run")) for arg in argv
    ]
    if script == "evaluate":
        cmd = [sys.executable, "-m", "harness.evaluate_saved", *argv]
    else:
        cmd = [sys.executable, f"algos/{script}.py", *argv]
        if "--run-dir" not in argv:
            cmd += ["--run-dir", str(tmp_path / "runs")]
        if script == "hipi_bc" and "--dataset" not in argv:
            cmd += ["--dataset", str(tmp_path / "demos.npz")]
    before = snapshot(tmp_path)

    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)

    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], lines
    # a training script prints its replay size just before it compiles: nothing was printed
    assert result.stdout == "", result.stdout
    assert snapshot(tmp_path) == before
