"""The Hindsight EM figure scripts end to end on tiny point-navigation configs: train,
read the runs back, write the table between its markers and the PNG."""

import dataclasses
import os

import numpy as np

from experiments import hindsight_em_fig4 as fig4
from experiments import hindsight_em_fig5 as fig5

TINY = {
    "num_envs": 4,
    "batch_size": 16,
    "buffer_size": 400,
    "hidden_sizes": (16,),
    "eval_episodes": 8,
}
SHORT_EPISODES = ("dim=2", "episode_length=10")


def read_table(path, marker):
    text = open(path).read()
    body = text.split(f"<!-- {marker}:begin -->", 1)[1].split(f"<!-- {marker}:end -->", 1)[0]
    return [line for line in body.splitlines() if line.startswith("| pointnav |")]


def test_fig4_trains_every_method_and_writes_table_and_figure(tmp_path):
    configs = (
        fig4.Config(
            "em-tiny",
            "hindsight_em",
            "EM",
            "pointnav",
            320,
            SHORT_EPISODES,
            TINY | {"trajectories_per_iter": 1, "gradient_steps": 2},
        ),
        fig4.Config(
            "her01-tiny",
            "her",
            "HER 0/1",
            "pointnav",
            320,
            SHORT_EPISODES,
            TINY | {"reward_convention": "0/1", "learning_starts": 40},
        ),
    )
    args = fig4.Args(out_dir=str(tmp_path), run_dir=str(tmp_path / "runs"), num_seeds=2)
    # an EM iteration steps each of 4 envs ceil(10 / 4) = 3 times: 12 env steps, HER's 4
    assert [fig4.iteration_steps(c) for c in configs] == [12, 4]
    results = fig4.run_figure(args, configs, (("pointnav", "tiny"),), "tiny_fig")
    assert [r["config"].name for r in results] == ["em-tiny", "her01-tiny"]
    for r in results:
        assert r["success"].shape == (fig4.NUM_CHUNKS, 2)  # (eval points, seeds)
        assert r["steps"][-1] == 360  # 320 rounded to whole chunks of both: 10 * lcm(12, 4)
        assert np.all((r["success"] >= 0) & (r["success"] <= 1))
    rows = read_table(tmp_path / "hindsight_em.md", "tiny_fig")
    assert [row.split(" | ")[1] for row in rows] == ["EM", "HER 0/1"]
    assert os.path.getsize(tmp_path / "img" / "tiny_fig.png") > 1000
    # --report-only trains nothing and reads the same runs back
    again = fig4.run_figure(
        dataclasses.replace(args, report_only=True), configs, (("pointnav", "tiny"),), "tiny_fig"
    )
    assert [r["run"] for r in again] == [r["run"] for r in results]
    assert all(len(os.listdir(tmp_path / "runs" / c.name)) == 1 for c in configs)
    # a run stopped before its budget is labelled in the table
    fig4.mark_stopped(results[0]["run"], 1.0)
    fig4.run_figure(
        dataclasses.replace(args, report_only=True), configs, (("pointnav", "tiny"),), "tiny_fig"
    )
    rows = read_table(tmp_path / "hindsight_em.md", "tiny_fig")
    assert ["(stopped early)" in row for row in rows] == [True, False]


def test_fig5_runs_each_seed_alone_and_stacks_them(tmp_path, monkeypatch):
    tiny = fig4.Config(
        "her-image-tiny",
        "her",
        "HER",
        "pointnav",
        80,
        SHORT_EPISODES,
        TINY | {"image_obs": True, "learning_starts": 20},
    )
    monkeypatch.setattr(fig5, "CONFIGS", (tiny,))
    args = fig5.Args(out_dir=str(tmp_path), run_dir=str(tmp_path / "runs"), num_seeds=2)
    (result,) = fig5.main(args)
    for seed in (1, 2):
        (run,) = os.listdir(tmp_path / "runs" / "her-image-tiny" / f"seed{seed}")
        assert f"__her__{seed}__" in run
    assert result["success"].shape == (fig5.NUM_CHUNKS, 2)
    assert result["steps"][-1] == 80
    (row,) = read_table(tmp_path / "hindsight_em.md", "hindsight_em_fig5")
    assert row.split(" | ")[1] == "HER"
    assert os.path.getsize(tmp_path / "img" / "hindsight_em_fig5.png") > 1000
