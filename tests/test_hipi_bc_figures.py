"""experiments/hipi_bc_figures.py: the half_cheetah dataset flags are checked before any
training, and the demonstration summary measures how well the data tracks its labels."""

import numpy as np
import pytest

from common import cli
from common import dataset as ds
from experiments import hipi_bc_figures as exp


def write_dataset(path, env_id="half_cheetah", labels=True, n=12, horizon=10, speed=None):
    """A small dataset written straight from NumPy; the forward speed of every step is
    `speed` (N, T), by default the trajectory's label."""
    rng = np.random.default_rng(0)
    task_labels = rng.uniform(0.0, 3.0, (n, 1)).astype(np.float32)
    if speed is None:
        speed = np.repeat(task_labels, horizon, axis=1)
    data = ds.Dataset(
        observations=rng.normal(size=(n, horizon, 17)).astype(np.float32),
        actions=rng.uniform(-1, 1, (n, horizon, 6)).astype(np.float32),
        features=np.asarray(speed, np.float32)[..., None],
        lengths=np.full((n,), horizon, np.int32),
        env_id=env_id,
        env_kwargs={},
        task_labels=task_labels if labels else None,
        metadata={"policy": "policy of runs/test", "noise": 0.1, "mean_return": -50.0},
    )
    ds.save(str(path), data)
    return data


def test_pointnav_figures_do_not_need_a_cheetah_dataset(tmp_path):
    args = exp.Args(cheetah_dataset=str(tmp_path / "absent.npz"))
    assert exp.CHEETAH not in args.datasets


def test_missing_cheetah_dataset_is_a_usage_error_that_says_how_to_make_one(tmp_path):
    with pytest.raises(cli.UsageError, match="no dataset file.*collect_demos.py --checkpoint"):
        exp.Args(datasets=("cheetah",), cheetah_dataset=str(tmp_path / "absent.npz"))


def test_a_dataset_of_another_env_is_refused_as_cheetah(tmp_path):
    path = tmp_path / "pointnav.npz"
    write_dataset(path, env_id="pointnav")
    with pytest.raises(cli.UsageError, match="holds pointnav trajectories, not half_cheetah"):
        exp.Args(datasets=("goals8", "cheetah"), cheetah_dataset=str(path))


def test_a_cheetah_dataset_without_labels_is_refused(tmp_path):
    path = tmp_path / "unlabelled.npz"
    write_dataset(path, labels=False)
    with pytest.raises(cli.UsageError, match="no task labels"):
        exp.Args(datasets=("cheetah",), cheetah_dataset=str(path))


@pytest.mark.parametrize(
    "flags, message",
    [
        ({"datasets": ("goals8", "goals8")}, "names a dataset twice"),
        ({"datasets": ()}, "at least one dataset"),
        ({"cheetah_biases": ()}, "--cheetah-biases must name at least one bias"),
        ({"cheetah_max_epochs": 0}, "--cheetah-max-epochs must be positive"),
        ({"cheetah_eval_episodes": 0}, "--cheetah-eval-episodes must be positive"),
    ],
)
def test_bad_flags_are_usage_errors(flags, message):
    with pytest.raises(cli.UsageError, match=message):
        exp.Args(**flags)


def test_command_line_exits_2_on_a_bad_cheetah_dataset(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.parse(
            exp.Args, ["--datasets", "cheetah", "--cheetah-dataset", str(tmp_path / "absent.npz")]
        )
    assert exit_info.value.code == 2
    assert "no dataset file" in capsys.readouterr().err


def test_demonstration_summary_measures_tracking(tmp_path):
    path = tmp_path / "cheetah.npz"
    data = write_dataset(path)  # every step at exactly the commanded speed
    exact = exp.cheetah_demos_table(exp.Args(datasets=("cheetah",), cheetah_dataset=str(path)))
    assert "mean |v − ψ| 0.00 m/s over all steps, 0.00 m/s over the second half" in exact
    assert "correlation of ψ with the second-half speed 1.00" in exact
    rows = [line for line in exact.splitlines() if line.startswith("| ") and "–" in line]
    assert sum(int(row.split("|")[2]) for row in rows) == data.num_trajectories

    # a constant 1 m/s whatever the label: the error is the mean |1 − ψ|
    constant = np.ones((12, 10))
    write_dataset(path, speed=constant)
    labels = data.task_labels[:, 0]
    off = exp.cheetah_demos_table(exp.Args(datasets=("cheetah",), cheetah_dataset=str(path)))
    expected = np.abs(1.0 - labels).mean()
    assert f"mean |v − ψ| {expected:.2f} m/s over all steps" in off
