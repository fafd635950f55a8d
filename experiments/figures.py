"""Every reported experiment, as data. `python -m harness.sweep <figure>` trains the runs
whose records are missing; `python -m harness.report <figure>` writes the table between
the `<figure>` markers of its doc page and docs/img/<figure>.png."""

from __future__ import annotations

from harness.specs import Figure, Run

# --- learning tests (tests/test_learning.py): each test's settings, over 8 seeds, and
# the baseline that the threshold must clear --------------------------------------------
BITFLIP_10 = (
    "--env-id", "bitflip", "--env-kwargs", "n_bits=10", "--total-timesteps", "20000",
    "--num-chunks", "4", "--eval-episodes", "200", "--buffer-size", "200000",
)  # fmt: skip
POINTNAV_2 = (
    "--env-id", "pointnav", "--env-kwargs", "dim=2", "--total-timesteps", "12000",
    "--num-chunks", "3", "--eval-episodes", "200", "--buffer-size", "200000",
)  # fmt: skip
HIPI_POINTNAV = ("--num-chunks", "4", "--eval-episodes", "200")
FOUR_ROOMS_SMALL = (
    "--env-id", "four_rooms", "--env-kwargs", "resize_factor=1", "min_goal_steps=7",
    "--total-timesteps", "32000", "--num-chunks", "4", "--eval-episodes", "200",
)  # fmt: skip

LEARNING_TESTS = Figure(
    name="learning_tests",
    doc="docs/testing.md",
    num_seeds=8,
    plot=False,
    runs=(
        Run("her_dqn-bitflip10", "her_dqn", BITFLIP_10, "DQN + HER, bit flip n = 10",
            threshold=0.9),
        Run("her_dqn-bitflip10-none", "her_dqn", (*BITFLIP_10, "--strategy", "none"),
            "DQN, no relabeling", baseline=True),
        Run("her-pointnav2", "her", POINTNAV_2, "DDPG + HER, pointnav N = 2", threshold=0.9),
        Run("her-pointnav2-none", "her", (*POINTNAV_2, "--strategy", "none"),
            "DDPG, no relabeling", baseline=True),
        Run("hipi_rl-pointnav", "hipi_rl", HIPI_POINTNAV, "HIPI-RL inverse_rl, pointnav (README)",
            threshold=0.8),
        Run("hipi_rl-pointnav-none", "hipi_rl", (*HIPI_POINTNAV, "--relabel", "none"),
            "SAC, no relabeling", baseline=True),
        Run("hipi_rl-four_rooms11", "hipi_rl", FOUR_ROOMS_SMALL,
            "HIPI-RL inverse_rl, four_rooms 11x11", threshold=0.4),
        Run("hipi_rl-four_rooms11-none", "hipi_rl", (*FOUR_ROOMS_SMALL, "--relabel", "none"),
            "SAC, no relabeling", baseline=True),
    ),
)  # fmt: skip

# --- HER as the problem grows: bit flip (HER Fig. 1) and N-D point navigation (EM Fig. 3)
HER_FLAGS = ("--buffer-size", "300000")


def her_runs(script: str, env_id: str, name: str, size: int, steps: int, panel: str):
    kwarg = "n_bits" if env_id == "bitflip" else "dim"
    flags = ("--env-id", env_id, "--env-kwargs", f"{kwarg}={size}",
             "--total-timesteps", str(steps), *HER_FLAGS)  # fmt: skip
    label = f"n = {size}" if env_id == "bitflip" else f"N = {size}"
    return (
        Run(f"{name}-{size}", script, flags, f"{label}, future", panel),
        Run(f"{name}-{size}-none", script, (*flags, "--strategy", "none"), f"{label}, none",
            panel, baseline=True),
    )  # fmt: skip


HER_SCALING = Figure(
    name="her_scaling",
    doc="docs/her.md",
    num_seeds=3,
    solved=0.9,
    extra=("eval/final_distance",),
    runs=(
        *her_runs("her_dqn", "bitflip", "bitflip", 10, 20_000, "DQN + HER, bit flip"),
        *her_runs("her_dqn", "bitflip", "bitflip", 20, 60_000, "DQN + HER, bit flip"),
        *her_runs("her_dqn", "bitflip", "bitflip", 30, 150_000, "DQN + HER, bit flip"),
        *her_runs("her", "pointnav", "pointnav", 2, 20_000, "DDPG + HER, point navigation"),
        *her_runs("her", "pointnav", "pointnav", 4, 40_000, "DDPG + HER, point navigation"),
        *her_runs("her", "pointnav", "pointnav", 8, 150_000, "DDPG + HER, point navigation"),
    ),
)

# --- HIPI-RL on 2-D point navigation: the README's main job beside HER and no relabeling
HIPI_POINTNAV_DIM2 = Figure(
    name="hipi_pointnav_dim2",
    doc="docs/hipi_rl.md",
    num_seeds=5,
    extra=("eval/final_distance",),
    runs=(
        Run("inverse_rl", "hipi_rl", (), "inverse_rl"),
        Run("future", "hipi_rl", ("--relabel", "future"), "future"),
        Run("none", "hipi_rl", ("--relabel", "none"), "none", baseline=True),
    ),
)

FIGURES = {f.name: f for f in (LEARNING_TESTS, HER_SCALING, HIPI_POINTNAV_DIM2)}
