"""experiments/hipi_goal_reaching.py at a tiny budget: the table it writes holds the final
values the runs logged, the marked section goes into the page without touching the rest,
--reuse reads a finished run back, and bad flags stop before any training."""

import dataclasses
import os

import numpy as np
import pytest

from common import cli
from common.logger import read_metrics
from experiments import hipi_goal_reaching as exp


def test_table_reports_the_final_values_the_runs_logged(tmp_path):
    out_dir, run_dir = tmp_path / "docs", tmp_path / "runs"
    out_dir.mkdir()
    page = out_dir / "hipi_rl.md"
    page.write_text("# HIPI-RL\n\nHand-written text stays.\n")
    args = cli.parse(
        exp.Args,
        [
            "--env-id", "pointnav",
            "--env-kwargs", "dim=2",
            "--strategies", "future",
            "--num-seeds", "2",
            "--total-timesteps", "128",
            "--num-envs", "4",
            "--batch-size", "16",
            "--num-chunks", "2",
            "--eval-episodes", "4",
            "--metric", "eval/final_distance",
            "--out-dir", str(out_dir),
            "--run-dir", str(run_dir),
        ],
    )  # fmt: skip
    exp.main(args)

    (run,) = os.listdir(run_dir / "future")
    metrics = read_metrics(str(run_dir / "future" / run))
    last = metrics["step"] == metrics["step"].max()
    final = metrics["eval/final_distance"][last][np.argsort(metrics["seed"][last])]
    assert len(final) == 2 and np.all(final > 0)

    text = page.read_text()
    assert text.startswith("# HIPI-RL\n\nHand-written text stays.\n")
    section = text.split("<!-- hipi_pointnav_dim2:begin -->")[1].split(
        "<!-- hipi_pointnav_dim2:end -->"
    )[0]
    (row,) = [line for line in section.splitlines() if line.startswith("| future |")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "128"
    assert cells[2] == f"{final.mean():.2f} ± {final.std():.2f}"
    assert cells[3] == ", ".join(f"{v:.2f}" for v in final)
    assert "--strategies future --num-seeds 2 --total-timesteps 128" in section
    assert os.path.getsize(out_dir / "img" / "hipi_pointnav_dim2.png") > 1000

    # --reuse reads the finished run back instead of training again; other flags train anew
    exp.main(dataclasses.replace(args, reuse=True))
    assert os.listdir(run_dir / "future") == [run]
    assert page.read_text() == text
    other = dataclasses.replace(args, reuse=True, eval_episodes=2)
    assert exp.finished_run(exp.algo_args(other, "future")) is None


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--strategies", "inverse_rl", "her"], "--strategies takes one or more of"),
        (["--metric", "charts/SPS"], "--metric must be an eval/ metric"),
        (["--num-seeds", "0"], "--num-seeds must be at least 1"),
        (
            [
                "--env-id",
                "reacher",
                "--env-kwargs",
                "family=goal_set",
                "--strategies",
                "none",
                "future",
            ],
            "--relabel future needs goals achieved by states",
        ),
    ],
)
def test_bad_flags_exit_2_with_one_sentence(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.parse(exp.Args, argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
