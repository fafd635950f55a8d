"""Every reported experiment, as data. `python experiments/sweep.py <figure>` trains the runs
whose records are missing; `python experiments/report.py <figure>` writes the table between
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
    "--total-timesteps", "48000", "--num-chunks", "4", "--eval-episodes", "200",
)  # fmt: skip

LEARNING_TESTS = Figure(
    name="learning_tests",
    summary="the learning tests' settings over 8 seeds, with their baselines",
    doc="docs/testing.md",
    num_seeds=8,
    plot=False,
    runs=(
        Run("her_dqn-bitflip10", "her_dqn", BITFLIP_10, "DQN + HER, bit flip n = 10",
            threshold=0.9),
        Run("her_dqn-bitflip10-none", "her_dqn", (*BITFLIP_10, "--relabel", "none"),
            "DQN, no relabeling", baseline=True),
        Run("her-pointnav2", "her", POINTNAV_2, "DDPG + HER, pointnav N = 2", threshold=0.9),
        Run("her-pointnav2-none", "her", (*POINTNAV_2, "--relabel", "none"),
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
        Run(f"{name}-{size}-none", script, (*flags, "--relabel", "none"), f"{label}, none",
            panel, baseline=True),
    )  # fmt: skip


HER_SCALING = Figure(
    name="her_scaling",
    summary="HER as tasks grow: DQN + HER on bit flip n = 10 / 20 / 30, DDPG + HER on N-D "
    "point navigation N = 2 / 4 / 8, each against no relabeling",
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
    summary="SAC with inverse-RL relabeling vs HER's future vs no relabeling, 2-D point "
    "navigation, 32k env steps",
    doc="docs/hipi_rl.md",
    num_seeds=5,
    extra=("eval/final_distance",),
    runs=(
        Run("inverse_rl", "hipi_rl", (), "inverse_rl"),
        Run("inverse_rl-4", "hipi_rl", ("--num-candidates", "4"), "inverse_rl, 4 + 4 candidates"),
        Run(
            "inverse_rl-16", "hipi_rl", ("--num-candidates", "16"), "inverse_rl, 16 + 16 candidates"
        ),
        Run("future", "hipi_rl", ("--relabel", "future"), "future"),
        Run("none", "hipi_rl", ("--relabel", "none"), "none", baseline=True),
    ),
)


# --- HIPI-RL, Fig. 5 (goal reaching) and Fig. 6 (other task families) at CPU scale ------
# Fig. 5 rows carry the attribution runs: inverse_rl without the goals that the batch's own
# transitions reached among its candidates (a reached goal is a one-step hindsight label),
# and without the partition function.
ATTRIBUTION = (
    ("inverse_rl", (), "inverse_rl", False),
    ("inverse_rl-16", ("--num-candidates", "16"), "inverse_rl, 16 + 16 candidates", False),
    ("inverse_rl-no-achieved", ("--no-achieved-candidates",), "inverse_rl, no achieved goals",
     False),
    ("inverse_rl-no-partition", ("--no-partition",), "inverse_rl, no log Z", False),
    ("future", ("--relabel", "future"), "future", False),
    ("final", ("--relabel", "final"), "final", False),
    ("random", ("--relabel", "random"), "random", True),
    ("none", ("--relabel", "none"), "none", True),
)  # fmt: skip
GOAL_STRATEGIES = tuple(s for s in ATTRIBUTION if s[0] in ("inverse_rl", "future", "final", "none"))
FAMILY = (
    ("inverse_rl", (), "inverse_rl", False),
    ("random", ("--relabel", "random"), "random", True),
    ("none", ("--relabel", "none"), "none", True),
)


def hipi_figure(name: str, env: tuple[str, ...], strategies, summary: str, **figure) -> Figure:
    runs = tuple(
        Run(config, "hipi_rl", (*env, *flags), label, baseline=baseline)
        for config, flags, label, baseline in strategies
    )
    return Figure(name=name, doc="docs/hipi_rl.md", runs=runs, summary=summary, **figure)


FOUR_ROOMS = ("--env-id", "four_rooms", "--total-timesteps", "200000", "--num-chunks", "10")
FOUR_ROOMS_11 = ("--env-id", "four_rooms", "--env-kwargs", "resize_factor=1", "min_goal_steps=7",
                 "--total-timesteps", "48000", "--num-chunks", "6")  # fmt: skip
REACHER_40K = ("--env-id", "reacher", "--total-timesteps", "40000", "--num-chunks", "5")
DISTANCE = ("eval/final_distance",)

HIPI_FIGURES = (
    hipi_figure("hipi_four_rooms", FOUR_ROOMS, ATTRIBUTION, extra=DISTANCE,
                summary="HIPI Fig. 5, four_rooms at the paper's settings, 200k env steps"),
    hipi_figure("hipi_four_rooms_resize_factor1_min_goal_steps7", FOUR_ROOMS_11, ATTRIBUTION,
                extra=DISTANCE, summary="HIPI Fig. 5, four_rooms on its undilated 11x11 map, "
                "48k env steps"),
    hipi_figure("hipi_reacher_margin0.01", (*REACHER_40K, "--env-kwargs", "margin=0.01"),
                ATTRIBUTION, extra=DISTANCE,
                summary="HIPI Fig. 5, MJX reacher, margin 0.01, 40k env steps"),
    hipi_figure("hipi_reacher_margin0.003", (*REACHER_40K, "--env-kwargs", "margin=0.003"),
                ATTRIBUTION, extra=DISTANCE,
                summary="HIPI Fig. 5, MJX reacher, margin 0.003, 40k env steps"),
    hipi_figure("hipi_finger", ("--env-id", "finger", "--total-timesteps", "100000",
                "--num-chunks", "5"), GOAL_STRATEGIES, extra=DISTANCE,
                summary="HIPI Fig. 5, MJX finger turning a knob to a goal angle, 100k env steps"),
    hipi_figure("hipi_arm_reach", ("--env-id", "arm_reach", "--total-timesteps", "80000",
                "--num-chunks", "5", "--max-grad-norm", "1.0"), GOAL_STRATEGIES, extra=DISTANCE,
                summary="HIPI Fig. 5, MJX 3-D arm reaching (the Sawyer and Jaco stand-in), "
                "80k env steps"),
    hipi_figure("hipi_quadruped", ("--env-id", "quadruped", "--total-timesteps", "100000",
                "--num-chunks", "5"), GOAL_STRATEGIES, extra=DISTANCE,
                summary="HIPI Fig. 5, MJX quadruped walking to a goal position, 100k env steps"),
    hipi_figure("hipi_reacher_familygoal_set", ("--env-id", "reacher", "--env-kwargs",
                "family=goal_set", "--num-chunks", "4"), FAMILY,
                summary="HIPI Fig. 6, MJX reacher with 32 discrete goals, 32k env steps"),
    hipi_figure("hipi_walker",
                ("--env-id", "walker", "--no-clip-target", "--num-chunks", "4",
                 "--num-candidates", "16"), FAMILY,
                metric="eval/episode_return", metric_label="eval return",
                summary="HIPI Fig. 6, MJX walker with linear rewards, 32k env steps"),
    hipi_figure("hipi_reacher_familygoal_margin", ("--env-id", "reacher", "--env-kwargs",
                "family=goal_margin", "--num-chunks", "4"), FAMILY,
                summary="HIPI Fig. 6, MJX reacher with goal + margin tasks, 32k env steps"),
)  # fmt: skip


# --- Hindsight EM: Fig. 3 (EM vs HER as tasks grow), Fig. 4 (reaching arms), Fig. 5 (images)
EM_POINTNAV = ("--learning-rate", "1e-4", "--gradient-steps", "64")


# HPG is on-policy, one gradient step per batch of 16 whole episodes: it gets 400k env steps
# at every size, at least EM's budget everywhere (its learning rate: the hpg_tuning figure)
HPG_BUDGET = ("--total-timesteps", "400000")


def em_scaling_runs():
    bitflip = {10: 20_000, 20: 60_000, 30: 150_000, 40: 250_000, 50: 400_000}
    pointnav = {2: 20_000, 4: 40_000, 8: 150_000, 16: 300_000}
    for n, steps in bitflip.items():
        env = ("--env-id", "bitflip", "--env-kwargs", f"n_bits={n}", "--total-timesteps",
               str(steps), "--buffer-size", "400000")  # fmt: skip
        yield Run(f"em-bitflip-{n}", "hindsight_em", env, f"EM, n = {n}", "bit flip")
        yield Run(f"her-bitflip-{n}", "her_dqn", env, f"DQN + HER, n = {n}", "bit flip")
        yield Run(f"hpg-bitflip-{n}", "hpg", (*env[:4], *HPG_BUDGET), f"HPG, n = {n}", "bit flip")
    for d, steps in pointnav.items():
        env = ("--env-id", "pointnav", "--env-kwargs", f"dim={d}", "--total-timesteps",
               str(steps), "--buffer-size", "300000")  # fmt: skip
        yield Run(f"em-pointnav-{d}", "hindsight_em", (*env, *EM_POINTNAV), f"EM, N = {d}",
                  "point navigation")  # fmt: skip
        yield Run(f"her-pointnav-{d}", "her", env, f"DDPG + HER, N = {d}", "point navigation")
        yield Run(f"hpg-pointnav-{d}", "hpg", (*env[:4], *HPG_BUDGET), f"HPG, N = {d}",
                  "point navigation")  # fmt: skip


EM_FIG4_METHODS = (
    ("em", "hindsight_em", (), "hindsight EM"),
    ("her01", "her", ("--reward-convention", "0/1"), "DDPG + HER, 0/1 rewards"),
    ("her", "her", (), "DDPG + HER, −1/0 rewards"),
)
IMAGE = (
    "--env-id", "pointnav", "--env-kwargs", "dim=2", "--image-obs", "--buffer-size", "20000",
    "--batch-size", "64", "--total-timesteps", "12000", "--num-chunks", "5",
)  # fmt: skip


def hybrid_runs():
    """The HER + EM hybrid (EM Sec. 4.4) over λ; λ = 0 is HER."""
    envs = (("pointnav", "dim=8", 150_000), ("reacher", "margin=0.01", 40_000))
    for env_id, kwargs, steps in envs:
        for coef in ("0", "0.1", "1"):
            flags = ("--env-id", env_id, "--env-kwargs", kwargs, "--total-timesteps", str(steps),
                     "--buffer-size", "300000", "--em-coef", coef)  # fmt: skip
            yield Run(f"hybrid-{env_id}-{coef}", "her", flags, f"λ = {coef}", env_id,
                      baseline=coef == "0")  # fmt: skip


EM_FIGURES = (
    Figure(name="hindsight_em_scaling", doc="docs/hindsight_em.md", num_seeds=3, solved=0.9,
           runs=tuple(em_scaling_runs()),
           summary="EM Fig. 3, hindsight EM vs HER, bit flip n = 10 … 50 and point navigation "
           "N = 2 … 16"),
    Figure(name="hpg_tuning", doc="docs/hindsight_em.md", num_seeds=3, solved=0.9,
           summary="HPG's learning rate, bit flip n = 10, 200k env steps",
           runs=tuple(Run(f"hpg-lr{lr}", "hpg", ("--env-id", "bitflip", "--env-kwargs",
                          "n_bits=10", "--total-timesteps", "200000", "--learning-rate", lr),
                          f"HPG, learning rate {lr}") for lr in ("3e-4", "1e-3", "3e-3"))),
    Figure(name="hindsight_em_fig11", doc="docs/hindsight_em.md", num_seeds=3,
           summary="EM Fig. 11, hindsight EM vs HPG on four rooms, 200k env steps",
           runs=(
        Run("em-four_rooms", "hindsight_em", ("--env-id", "four_rooms", "--total-timesteps",
            "200000", "--buffer-size", "400000"), "hindsight EM"),
        Run("hpg-four_rooms", "hpg", ("--env-id", "four_rooms", "--total-timesteps", "200000"),
            "HPG"),
        Run("reinforce-four_rooms", "hpg", ("--env-id", "four_rooms", "--total-timesteps",
            "200000", "--no-hindsight"), "REINFORCE (no hindsight)", baseline=True),
    )),
    Figure(name="em_hybrid", doc="docs/hindsight_em.md", num_seeds=3, runs=tuple(hybrid_runs()),
           summary="EM Sec. 4.4, the HER + EM hybrid over λ (λ = 0 is HER), point navigation "
           "N = 8 and MJX reacher"),
    Figure(name="hindsight_em_fig4", doc="docs/hindsight_em.md", num_seeds=3,
           summary="EM Fig. 4, hindsight EM vs DDPG + HER with 0/1 and −1/0 rewards, MJX reacher "
           "and arm_reach",
           extra=("eval/final_distance",), runs=tuple(
               Run(f"{prefix}-{env_id}", script, ("--env-id", env_id, "--total-timesteps",
                   str(steps), "--buffer-size", "100000", "--num-chunks", "10", *flags),
                   label, env_id)
               for env_id, steps in (("reacher", 40_000), ("arm_reach", 80_000))
               for prefix, script, flags, label in EM_FIG4_METHODS)),
    Figure(name="hindsight_em_fig5", doc="docs/hindsight_em.md", num_seeds=3,
           summary="EM Fig. 5, 2-D point navigation seen as 32x32 pictures, 12k env steps",
           runs=(
        Run("em-image-pointnav", "hindsight_em", (*IMAGE, *EM_POINTNAV), "hindsight EM"),
        Run("her-image-pointnav", "her", IMAGE, "DDPG + HER"),
    )),
)  # fmt: skip


# --- HIPI-BC, Fig. 7 (relabeled vs task-agnostic behaviour cloning) and Fig. 8 (a reward
# bias on one task, with and without the partition function), on scripted demonstrations
def demos(name: str, *flags: str) -> tuple[str, tuple[str, ...]]:
    """A dataset file and the command that collects it."""
    file = f"runs/data/{name}.npz"
    return file, ("python", "experiments/collect_demos.py", *flags, "--out", file)


GOALS8 = demos("pointnav_goals8", "--env-id", "pointnav", "--env-kwargs", "num_goals=8",
               "--num-trajectories", "1000", "--noise", "0.1")  # fmt: skip
GOALS2D = demos("pointnav_goals2d", "--env-id", "pointnav", "--num-trajectories", "1000",
                "--noise", "0.1")  # fmt: skip
QUADRUPED_DEMOS = demos("quadruped_direction", "--env-id", "quadruped", "--env-kwargs",
                        "family=direction", "--num-trajectories", "1000")  # fmt: skip
BC_POINTNAV = ("--max-epochs", "10", "--eval-every", "10", "--eval-episodes", "500")
BC_MJX = ("--max-epochs", "10", "--eval-every", "11", "--eval-episodes", "100")
BC_METHODS = (
    ("inverse_rl", (), "HIPI-BC", False),
    ("inverse_rl-epoch", ("--redraw", "epoch"), "HIPI-BC, one draw per epoch", False),
    ("none", ("--relabel", "none"), "task-agnostic BC", True),
    ("oracle", ("--relabel", "oracle"), "true task labels", False),
)

# continuous goals: whether the goals that trajectories reached (the final state's among
# them: final-state relabeling) make the gain, or the inverse-RL posterior does
GOALS2D_METHODS = (
    *BC_METHODS,
    ("inverse_rl-no-achieved", ("--no-achieved-candidates",), "HIPI-BC, no reached goals", False),
    ("reached", ("--num-candidates", "0"), "HIPI-BC, reached goals only", False),
)


def bc_runs(prefix: str, data, budget, panel: str, methods=BC_METHODS):
    for name, flags, label, baseline in methods:
        yield Run(f"{prefix}-{name}", "hipi_bc", ("--dataset", data[0], *budget, *flags),
                  f"{panel}: {label}", panel, baseline=baseline, data=(data,))  # fmt: skip


def bias_runs(prefix: str, data, budget, panel: str):
    for partition in (True, False):
        for bias in ("0", "0.5", "1", "2"):
            flags = ("--reward-bias", bias) + (() if partition else ("--no-partition",))
            label = f"{panel}: bias {bias}, {'with' if partition else 'without'} log Z"
            yield Run(f"{prefix}-bias{bias}{'' if partition else '-no-partition'}", "hipi_bc",
                      ("--dataset", data[0], *budget, *flags), label, panel,
                      data=(data,))  # fmt: skip


BC_FIGURES = (
    Figure(name="hipi_bc_fig7", doc="docs/hipi_bc.md", metric="eval/success_rate_best",
           metric_label="eval success of the best-validation policy", plot=False,
           extra=("eval/time_at_goal_best",),
           summary="HIPI-BC Fig. 7, point navigation with 8 goals and with continuous goals, "
           "1000 scripted demonstrations",
           runs=(*bc_runs("goals8", GOALS8, BC_POINTNAV, "8 goals"),
                 *bc_runs("goals2d", GOALS2D, BC_POINTNAV, "continuous goals", GOALS2D_METHODS))),
    Figure(name="hipi_bc_fig7_quadruped", doc="docs/hipi_bc.md",
           metric="eval/episode_return_best", metric_label="eval return of the best-validation "
           "policy", plot=False,
           summary="HIPI-BC Fig. 7, MJX quadruped linear direction rewards, 1000 scripted-trot "
           "demonstrations",
           runs=tuple(bc_runs("quadruped", QUADRUPED_DEMOS, BC_MJX, "quadruped"))),
    Figure(name="hipi_bc_fig8", doc="docs/hipi_bc.md", metric="eval/success_rate_best",
           metric_label="eval success of the best-validation policy", plot=False,
           extra=("relabel/first_task_fraction", "relabel/label_accuracy"),
           summary="HIPI-BC Fig. 8, a per-step reward bias on one of 8 goals, with and "
           "without the partition function",
           runs=tuple(bias_runs("goals8", GOALS8, BC_POINTNAV, "8 goals"))),
)  # fmt: skip

FIGURES = {
    f.name: f
    for f in (
        LEARNING_TESTS,
        HER_SCALING,
        HIPI_POINTNAV_DIM2,
        *HIPI_FIGURES,
        *BC_FIGURES,
        *EM_FIGURES,
    )  # fmt: skip
}
