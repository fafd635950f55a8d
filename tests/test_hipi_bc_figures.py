"""experiments/hipi_bc_figures.py: the MJX dataset flags (half_cheetah,
quadruped) are checked before any training, the demonstration summaries measure how well
the data follows its labels, and a run of one dataset rewrites only its own doc section."""

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


def write_quadruped_dataset(path, velocity, family="direction", n=16, horizon=10):
    """A quadruped dataset whose torso velocity at every step is `velocity(ψ)` (N, 2)."""
    rng = np.random.default_rng(1)
    angle = rng.uniform(-np.pi, np.pi, n)
    labels = np.stack([np.cos(angle), np.sin(angle)], -1).astype(np.float32)
    data = ds.Dataset(
        observations=rng.normal(size=(n, horizon, 29)).astype(np.float32),
        actions=rng.uniform(-1, 1, (n, horizon, 8)).astype(np.float32),
        features=np.repeat(velocity(labels)[:, None], horizon, axis=1).astype(np.float32),
        lengths=np.full((n,), horizon, np.int32),
        env_id="quadruped",
        env_kwargs={"family": family},
        task_labels=labels,
        metadata={"policy": "policy of runs/test", "noise": 0.1, "mean_return": 20.0},
    )
    ds.save(str(path), data)
    return data


def test_a_quadruped_dataset_of_the_goal_family_is_refused(tmp_path):
    path = tmp_path / "goals.npz"
    write_quadruped_dataset(path, lambda psi: psi, family="goal_reaching")
    with pytest.raises(cli.UsageError, match="collected with family=goal_reaching, not family="):
        exp.Args(datasets=("quadruped",), quadruped_dataset=str(path))


def test_a_missing_quadruped_dataset_names_its_flag(tmp_path):
    with pytest.raises(cli.UsageError, match="--quadruped-dataset: no dataset file"):
        exp.Args(datasets=("quadruped",), quadruped_dataset=str(tmp_path / "absent.npz"))


def test_quadruped_summary_measures_speed_along_and_across_the_direction(tmp_path):
    path = tmp_path / "quadruped.npz"
    data = write_quadruped_dataset(path, lambda psi: 0.5 * psi)  # 0.5 m/s along ψ
    args = exp.Args(datasets=("quadruped",), quadruped_dataset=str(path))
    along = exp.quadruped_demos_table(args)
    assert "mean speed along ψ 0.50 m/s over all steps, 0.50 m/s over the second half" in along
    assert "within 30° of ψ in 100% of the trajectories" in along
    rows = [line for line in along.splitlines() if line.startswith("| ") and " to " in line]
    assert len(rows) == 8
    assert sum(int(row.split("|")[2]) for row in rows) == data.num_trajectories
    assert all(row.split("|")[4].strip() in ("0.00", "—") for row in rows)  # nothing across

    # walking at 90° to ψ: no speed along it, all of it across
    write_quadruped_dataset(path, lambda psi: 0.5 * np.stack([-psi[:, 1], psi[:, 0]], -1))
    across = exp.quadruped_demos_table(args)
    assert "mean speed along ψ 0.00 m/s over all steps" in across
    assert "within 30° of ψ in 0% of the trajectories" in across
    filled = [row for row in across.splitlines() if row.startswith("| ") and "°" in row]
    assert filled and all(row.split("|")[5].strip() == "90°" for row in filled)


def fake_result(**_):
    seeds = np.linspace(-1.0, 1.0, 3)
    return {
        "eval/episode_return_best": (10.0 + seeds).tolist(),
        "relabel/task_error": [0.05] * 3,
        "charts/epochs": [4.0] * 3,
        "wall_time": 12.0,
    }


def test_a_quadruped_run_rewrites_only_its_own_sections(tmp_path, monkeypatch):
    path = tmp_path / "quadruped.npz"
    write_quadruped_dataset(path, lambda psi: 0.5 * psi)
    doc = tmp_path / "doc.md"
    other = "<!-- hipi_bc_fig7:begin -->\nkept\n<!-- hipi_bc_fig7:end -->\n"
    doc.write_text(other + "<!-- hipi_bc_fig8:begin -->\nkept too\n<!-- hipi_bc_fig8:end -->\n")
    calls = []
    monkeypatch.setattr(
        exp, "run_config", lambda args, key, **kw: calls.append(key) or fake_result()
    )
    args = exp.Args(datasets=("quadruped",), quadruped_dataset=str(path), num_seeds=3, doc=str(doc))
    exp.main(args)
    text = doc.read_text()
    assert other in text and "kept too" in text
    assert calls == ["fig7_quadruped_inverse_rl", "fig7_quadruped_none", "fig7_quadruped_oracle"]
    section = text.split("<!-- hipi_bc_fig7_quadruped:begin -->")[1].split("end -->")[0]
    assert "--datasets quadruped --quadruped-dataset" in section
    assert "| HIPI-BC | 10.0 ± 0.8 | 9.0, 10.0, 11.0 |" in section
    assert "quadruped (return of a 300-step episode; random policy -81.23)" in section
    assert "hipi_bc_quadruped_demos:begin" in text
    assert (tmp_path / "img" / "hipi_bc_fig7_quadruped.png").stat().st_size > 0
