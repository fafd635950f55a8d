"""HIPI-BC at CPU scale: the comparisons of Fig. 7 (relabeled vs task-agnostic behaviour
cloning) and Fig. 8 (a bias on the first task's reward, with and without the partition
function) of Eysenbach et al. 2020, on scripted-expert point-navigation datasets, on
half_cheetah target velocities with demonstrations from a trained SAC policy, and on
quadruped linear direction rewards with demonstrations from a scripted trot.

Writes docs/img/hipi_bc_fig7.png, docs/img/hipi_bc_fig8.png and the results tables of
docs/hipi_bc.md; the quadruped has its own section and docs/img/hipi_bc_fig7_quadruped.png,
so either can be rerun alone. Every
configuration's result is cached as JSON under `--out-dir`, so an interrupted run resumes
where it stopped.

    python experiments/hipi_bc_figures.py --num-seeds 5
    python experiments/hipi_bc_figures.py --datasets goals8 goals2d cheetah \
        --cheetah-dataset runs/hipi_bc_figures/data/cheetah.npz
    python experiments/hipi_bc_figures.py --datasets quadruped \
        --quadruped-dataset runs/hipi_bc_figures/data/quadruped.npz
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from typing import Literal

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import envs  # noqa: E402
from common import cli  # noqa: E402
from common import dataset as ds  # noqa: E402
from common.scripts import ROOT, load_algo  # noqa: E402
from experiments import collect_demos  # noqa: E402
from harness.report import write_between_markers  # noqa: E402

# name -> (env kwargs, what it stands in for)
POINTNAV = {
    "goals8": (("num_goals=8",), "a discrete task set (the paper's desk environment)"),
    "goals2d": ((), "continuous goals (the paper's continuous task families)"),
}
CHEETAH, QUADRUPED = "cheetah", "quadruped"
# MJX datasets read from --<name>-dataset: name -> (env id, env kwargs they must have,
# panel title, random-policy return of one episode (docs/envs.md, benchmarks/envs.py),
# the command that collects one)
FILE_DATASETS = {
    CHEETAH: (
        "half_cheetah",
        {},
        "half_cheetah target velocities, trained-policy demos",
        -171.57,
        "experiments/collect_demos.py --checkpoint runs/<half_cheetah run>",
    ),
    QUADRUPED: (
        "quadruped",
        {"family": "direction"},
        "quadruped directions, scripted-trot demos",
        -81.23,
        "experiments/collect_demos.py --env-id quadruped --env-kwargs family=direction",
    ),
}
FIG8_DATASETS = ("goals8", CHEETAH)
# generated section of docs/hipi_bc.md that holds each dataset's Fig. 7 table and plot
FIG7_SECTION = {QUADRUPED: "hipi_bc_fig7_quadruped"}
# method -> (hipi_bc.py flags, label); `reached` applies to goals2d only
FIG7_METHODS = {
    "inverse_rl": ({"relabel": "inverse_rl"}, "HIPI-BC"),
    "reached": (
        {"relabel": "inverse_rl", "num_candidates": 0},
        "HIPI-BC, reached goals as the only candidates",
    ),
    "none": ({"relabel": "none"}, "task-agnostic BC"),
    "oracle": ({"relabel": "oracle"}, "true task labels"),
}


@dataclass(frozen=True)
class Args:
    num_seeds: int = 5
    """seeds per configuration, trained side by side"""
    datasets: tuple[Literal["goals8", "goals2d", "cheetah", "quadruped"], ...] = (
        "goals8",
        "goals2d",
    )
    """Fig. 7 datasets (goals8 and cheetah also get Fig. 8): goals8 and goals2d are
    collected from pointnav's scripted expert, cheetah and quadruped are read from
    --cheetah-dataset and --quadruped-dataset"""
    num_trajectories: int = 1000
    """demonstrations per pointnav dataset"""
    noise: float = 0.1
    """action noise of the scripted expert"""
    max_epochs: int = 10
    """pointnav: BC epochs at most (early stopping may end a seed sooner)"""
    biases: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0)
    """Fig. 8 on goals8: per-step reward biases added to the first task"""
    eval_episodes: int = 500
    """pointnav: evaluation episodes per seed"""
    cheetah_dataset: str = "runs/hipi_bc_figures/data/cheetah.npz"
    """half_cheetah demonstrations with task labels, e.g. from
    `experiments/collect_demos.py --checkpoint runs/<half_cheetah run>`"""
    cheetah_max_epochs: int = 10
    """half_cheetah: BC epochs at most"""
    cheetah_biases: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0)
    """Fig. 8 on half_cheetah: per-step reward biases added to the first candidate task"""
    cheetah_eval_episodes: int = 100
    """half_cheetah: evaluation episodes per seed (of the best-validation policy only)"""
    quadruped_dataset: str = "runs/hipi_bc_figures/data/quadruped.npz"
    """quadruped demonstrations (`--env-kwargs family=direction`) with task labels, e.g.
    from `experiments/collect_demos.py --env-id quadruped --env-kwargs family=direction`"""
    quadruped_max_epochs: int = 10
    """quadruped: BC epochs at most"""
    quadruped_eval_episodes: int = 100
    """quadruped: evaluation episodes per seed (of the best-validation policy only)"""
    out_dir: str = "runs/hipi_bc_figures"
    """datasets, per-configuration results, run logs and the compilation cache"""
    doc: str = "docs/hipi_bc.md"
    """markdown file whose generated sections are rewritten"""

    def __post_init__(self):
        for name in (
            "num_seeds",
            "num_trajectories",
            "max_epochs",
            "eval_episodes",
            "cheetah_max_epochs",
            "cheetah_eval_episodes",
            "quadruped_max_epochs",
            "quadruped_eval_episodes",
        ):
            if getattr(self, name) <= 0:
                raise cli.UsageError(f"--{name.replace('_', '-')} must be positive")
        if not self.datasets:
            raise cli.UsageError("--datasets must name at least one dataset")
        if len(set(self.datasets)) != len(self.datasets):
            raise cli.UsageError(f"--datasets names a dataset twice: {' '.join(self.datasets)}")
        for name in ("biases", "cheetah_biases"):
            if not getattr(self, name):
                raise cli.UsageError(f"--{name.replace('_', '-')} must name at least one bias")
        for name in FILE_DATASETS:
            if name in self.datasets:
                check_file_dataset(name, getattr(self, f"{name}_dataset"))


def check_file_dataset(name: str, path: str) -> ds.Dataset:
    """The dataset `name` of FILE_DATASETS at `path`, or a UsageError saying what is wrong."""
    env_id, env_kwargs, _, _, how = FILE_DATASETS[name]
    flag = f"--{name}-dataset"
    try:
        data = ds.load(path)
    except ds.DatasetError as err:
        raise cli.UsageError(f"{flag}: {err} (write one with {how})") from None
    if data.env_id != env_id:
        raise cli.UsageError(f"{flag} {path} holds {data.env_id} trajectories, not {env_id} ones")
    for key, value in env_kwargs.items():
        if data.env_kwargs.get(key) != value:
            raise cli.UsageError(
                f"{flag} {path} was collected with {key}={data.env_kwargs.get(key)}, "
                f"not {key}={value}"
            )
    if data.task_labels is None:
        raise cli.UsageError(
            f"{flag} {path} has no task labels, which the true-label baseline "
            "and the relabeling error need"
        )
    return data


def dataset_path(args: Args, name: str) -> str:
    if name in FILE_DATASETS:
        return getattr(args, f"{name}_dataset")
    path = os.path.join(args.out_dir, "data", f"{name}.npz")
    if not os.path.exists(path):
        collect_demos.main(
            collect_demos.Args(
                env_id="pointnav",
                env_kwargs=POINTNAV[name][0],
                noise=args.noise,
                num_trajectories=args.num_trajectories,
                out=path,
            )
        )
    return path


def budget_flags(args: Args, name: str) -> dict:
    """hipi_bc.py's epochs and evaluation for dataset `name`."""
    if name in FILE_DATASETS:  # the MJX evaluation is costly: the best-validation policy only
        max_epochs = getattr(args, f"{name}_max_epochs")
        return {
            "max_epochs": max_epochs,
            "eval_every": max_epochs + 1,
            "eval_episodes": getattr(args, f"{name}_eval_episodes"),
        }
    return {
        "max_epochs": args.max_epochs,
        "eval_every": args.max_epochs,
        "eval_episodes": args.eval_episodes,
    }


def metric_of(name: str) -> tuple[str, str]:
    """(result key, label) of the evaluation metric of dataset `name`."""
    if name in FILE_DATASETS:
        return "eval/episode_return_best", "eval return"
    return "eval/success_rate_best", "eval success"


def run_config(args: Args, key: str, **overrides) -> dict:
    """hipi_bc.py with `overrides`, cached in out_dir/results/<key>.json."""
    path = os.path.join(args.out_dir, "results", f"{key}.json")
    if os.path.exists(path):
        return json.load(open(path))
    hipi_bc = load_algo("hipi_bc")
    start = time.time()
    final = hipi_bc.main(
        hipi_bc.Args(
            num_seeds=args.num_seeds,
            run_dir=os.path.join(args.out_dir, "runs"),
            quiet=True,
            **overrides,
        )
    )
    result = {k: np.asarray(v, np.float64).reshape(-1).tolist() for k, v in final.items()}
    result["wall_time"] = time.time() - start
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    json.dump(result, open(tmp, "w"), indent=1)
    os.replace(tmp, path)
    return result


def mean_std(values, digits: int = 2) -> str:
    values = np.asarray(values)
    return f"{values.mean():.{digits}f} ± {values.std():.{digits}f}"


def per_seed(values, digits: int = 2) -> str:
    return ", ".join(f"{x:.{digits}f}" for x in values)


def bins(values: np.ndarray, edges: np.ndarray):
    """(low, high, mask of `values` in [low, high)) per bin; the last bin holds its top edge."""
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        upper = values < high if high < edges[-1] else values <= high
        yield low, high, (values >= low) & upper


def cheetah_demos_table(args: Args) -> str:
    """How well the demonstrations track their commanded velocity, from the dataset."""
    data = check_file_dataset(CHEETAH, args.cheetah_dataset)
    mask = data.mask()
    speed = data.features[..., 0]  # (N, T) forward velocity after each step
    target = data.task_labels[:, 0]  # (N,)
    error = np.abs(speed - target[:, None])
    late = mask & (np.arange(data.max_length) >= data.max_length // 2)[None]
    late_speed = (speed * late).sum(1) / late.sum(1)  # (N,) mean speed, second half
    rows = [
        "| commanded ψ (m/s) | trajectories | mean speed, 2nd half (m/s) | mean \\|v − ψ\\|, "
        "2nd half |",
        "| --- | ---: | ---: | ---: |",
    ]
    for low, high, inside in bins(target, np.linspace(0.0, 3.0, 7)):
        if not inside.any():
            rows.append(f"| {low:.1f}–{high:.1f} | 0 | — | — |")
            continue
        rows.append(
            f"| {low:.1f}–{high:.1f} | {inside.sum()} | {late_speed[inside].mean():.2f} | "
            f"{(error * late)[inside].sum() / late[inside].sum():.2f} |"
        )
    spread = late_speed.std() > 0 and target.std() > 0
    correlation = np.corrcoef(target, late_speed)[0, 1] if spread else float("nan")
    meta = data.metadata
    summary = (
        f"{data.num_trajectories} trajectories of {data.max_length} steps from the "
        f"{meta.get('policy', 'unknown policy')} with action noise {meta.get('noise')}: mean "
        f"return {meta.get('mean_return', float('nan')):.1f} (random policy "
        f"{FILE_DATASETS[CHEETAH][3]}); mean |v − ψ| {error[mask].mean():.2f} m/s over all steps, "
        f"{error[late].mean():.2f} m/s over the second half; correlation of ψ with the "
        f"second-half speed {correlation:.2f}."
    )
    return f"{summary}\n\n" + "\n".join(rows)


def quadruped_demos_table(args: Args) -> str:
    """How well the demonstrations walk in their commanded direction, from the dataset."""
    data = check_file_dataset(QUADRUPED, args.quadruped_dataset)
    mask = data.mask()
    velocity = data.features  # (N, T, 2) torso v_xy over each step
    direction = data.task_labels  # (N, 2) unit vectors
    along = np.einsum("ntd,nd->nt", velocity, direction)  # (N, T)
    late = mask & (np.arange(data.max_length) >= data.max_length // 2)[None]
    late_velocity = (velocity * late[..., None]).sum(1) / late.sum(1)[:, None]  # (N, 2)
    late_along = np.einsum("nd,nd->n", late_velocity, direction)
    late_across = np.abs(
        direction[:, 0] * late_velocity[:, 1] - direction[:, 1] * late_velocity[:, 0]
    )
    angle = np.degrees(np.arctan2(late_across, late_along))  # (N,) in [0, 180]
    heading = np.degrees(np.arctan2(direction[:, 1], direction[:, 0]))  # (N,) in [-180, 180]
    rows = [
        "| commanded direction (degrees) | trajectories | speed along ψ, 2nd half (m/s) | "
        "speed across ψ, 2nd half (m/s) | angle between ψ and the mean velocity |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for low, high, inside in bins(heading, np.linspace(-180.0, 180.0, 9)):
        if not inside.any():
            rows.append(f"| {low:.0f} to {high:.0f} | 0 | — | — | — |")
            continue
        rows.append(
            f"| {low:.0f} to {high:.0f} | {inside.sum()} | {late_along[inside].mean():.2f} | "
            f"{late_across[inside].mean():.2f} | {angle[inside].mean():.0f}° |"
        )
    meta = data.metadata
    summary = (
        f"{data.num_trajectories} trajectories of {data.max_length} steps from the "
        f"{meta.get('policy', 'unknown policy')} with action noise {meta.get('noise')}: mean "
        f"return {meta.get('mean_return', float('nan')):.1f} (random policy "
        f"{FILE_DATASETS[QUADRUPED][3]}); mean speed along ψ {along[mask].mean():.2f} m/s over all "
        f"steps, {along[late].mean():.2f} m/s over the second half; the second half's mean "
        f"velocity is within 30° of ψ in {np.mean(angle < 30):.0%} of the trajectories."
    )
    return f"{summary}\n\n" + "\n".join(rows)


def figure7(args: Args) -> tuple[dict[str, list[str]], dict]:
    results = {}
    for name in args.datasets:
        path = dataset_path(args, name)
        for method, (flags, _) in FIG7_METHODS.items():
            if method == "reached" and name != "goals2d":
                continue  # goals8: the whole set is always the candidates; cheetah: no goals
            results[name, method] = run_config(
                args, f"fig7_{name}_{method}", dataset=path, **budget_flags(args, name), **flags
            )
    tables = {}
    pointnav = [(n, m) for n, m in results if n in POINTNAV]
    if pointnav:
        rows = [
            "| dataset | method | eval success (mean ± std) | per seed | relabel task error "
            "| epochs |",
            "| --- | --- | ---: | --- | ---: | ---: |",
        ]
        for name, method in pointnav:
            r = results[name, method]
            error = r.get("relabel/task_error")
            rows.append(
                f"| {name} | {FIG7_METHODS[method][1]} | {mean_std(r['eval/success_rate_best'])} | "
                f"{per_seed(r['eval/success_rate_best'])} | "
                f"{'' if error is None else f'{np.mean(error):.3f}'} | "
                f"{np.mean(r['charts/epochs']):.1f} |"
            )
        tables.setdefault(fig7_section("goals8"), []).append("\n".join(rows))
    for name in (n for n in FILE_DATASETS if n in args.datasets):
        tables.setdefault(fig7_section(name), []).append(file_dataset_table(name, results))
    return tables, results


def fig7_section(name: str) -> str:
    """The generated section of the doc that holds dataset `name`'s Fig. 7 table."""
    return FIG7_SECTION.get(name, "hipi_bc_fig7")


def file_dataset_table(name: str, results: dict) -> str:
    """Fig. 7 table of an MJX dataset: eval return of every method."""
    env_id, env_kwargs, _, random_return, _ = FILE_DATASETS[name]
    length = envs.make(env_id, **env_kwargs).episode_length
    tracks = name == CHEETAH  # half_cheetah's success: within 0.1 m/s of ψ
    rows = [
        f"{env_id} (return of a {length}-step episode; random policy {random_return}):",
        "",
        "| method | eval return (mean ± std) | per seed | "
        + ("time within 0.1 m/s of ψ | " if tracks else "")
        + "relabel error \\|ψ̃ − ψ\\| | epochs | wall time (s) |",
        "| --- | ---: | --- | " + ("---: | " if tracks else "") + "---: | ---: | ---: |",
    ]
    for (dataset, method), r in results.items():
        if dataset != name:
            continue
        error = r.get("relabel/task_error")
        rows.append(
            f"| {FIG7_METHODS[method][1]} | {mean_std(r['eval/episode_return_best'], 1)} | "
            f"{per_seed(r['eval/episode_return_best'], 1)} | "
            + (f"{np.mean(r['eval/time_at_goal_best']):.2f} | " if tracks else "")
            + f"{'' if error is None else f'{np.mean(error):.3f}'} | "
            f"{np.mean(r['charts/epochs']):.1f} | {r['wall_time']:.0f} |"
        )
    return "\n".join(rows)


def figure8_key(name: str, bias: float, partition: bool) -> str:
    if name == CHEETAH and bias == 0 and partition:
        return "fig7_cheetah_inverse_rl"  # the same configuration as Fig. 7's HIPI-BC
    prefix = "fig8" if name == "goals8" else f"fig8_{name}"
    return f"{prefix}_bias{bias:g}_{'partition' if partition else 'nopartition'}"


def figure8(args: Args) -> tuple[list[str], dict]:
    results = {}
    tables = []
    for name in (n for n in FIG8_DATASETS if n in args.datasets):
        path = dataset_path(args, name)
        biases = args.cheetah_biases if name == CHEETAH else args.biases
        for partition in (True, False):
            for bias in biases:
                results[name, partition, bias] = run_config(
                    args,
                    figure8_key(name, bias, partition),
                    dataset=path,
                    reward_bias=bias,
                    partition=partition,
                    **budget_flags(args, name),
                )
        metric, label = metric_of(name)
        last = "relabel accuracy" if name == "goals8" else "relabel error \\|ψ̃ − ψ\\|"
        rows = [
            f"{'pointnav goals8' if name == 'goals8' else 'half_cheetah'}:",
            "",
            f"| per-step bias on task 0 | log Z | {label} (mean ± std) | trajectories "
            f"relabeled to task 0 | {last} |",
            "| ---: | --- | ---: | ---: | ---: |",
        ]
        for partition in (True, False):
            for bias in biases:
                r = results[name, partition, bias]
                accuracy = r["relabel/label_accuracy" if name == "goals8" else "relabel/task_error"]
                rows.append(
                    f"| {bias:g} | {'with' if partition else 'without'} | "
                    f"{mean_std(r[metric], 2 if name == 'goals8' else 1)} | "
                    f"{np.mean(r['relabel/first_task_fraction']):.3f} | "
                    f"{np.mean(accuracy):.3f} |"
                )
        tables.append("\n".join(rows))
    return tables, results


def fig7_image(section: str) -> str:
    return f"{section}.png"


def plot_fig7(names: list[str], fig7: dict, path: str) -> None:
    """One bar panel per dataset of `names`: every method's metric, mean ± std and seeds."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.6))
    for ax, name in zip(np.atleast_1d(axes), names, strict=True):
        metric, label = metric_of(name)
        methods = [m for m in FIG7_METHODS if (name, m) in fig7]
        values = [np.asarray(fig7[name, m][metric]) for m in methods]
        x = np.arange(len(methods))
        ax.bar(x, [v.mean() for v in values], yerr=[v.std() for v in values], color="C0")
        for i, v in enumerate(values):
            ax.scatter(np.full(v.shape, i), v, color="k", s=8, zorder=3)
        short = {"reached": "HIPI-BC,\nreached goals"}
        labels = [short.get(m, FIG7_METHODS[m][1]) for m in methods]
        ax.set_xticks(x, labels, rotation=20, fontsize=8)
        ax.set_ylabel(f"{label} (best-validation policy)", fontsize=8)
        if name in FILE_DATASETS:
            _, _, title, random_return, _ = FILE_DATASETS[name]
            ax.axhline(random_return, color="C3", ls="--", lw=1, label="random policy")
            low = min(random_return, *(v.min() for v in values))
            high = max(0.0, *(v.max() for v in values))
            ax.set_ylim(low - 0.15 * (high - low), high + 0.05 * (high - low))
            ax.legend(fontsize=7, loc="lower right")
            ax.set_title(title, fontsize=9)
        else:
            ax.set_ylim(0, 1.05)
            ax.set_title(f"pointnav {name}: {POINTNAV[name][1].split(' (')[0]}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot(args: Args, fig7: dict, fig8: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img = os.path.join(os.path.dirname(os.path.join(ROOT, args.doc)), "img")  # beside the doc
    os.makedirs(img, exist_ok=True)
    for section, names in sections_of(args).items():
        plot_fig7(names, fig7, os.path.join(img, fig7_image(section)))

    names = [n for n in FIG8_DATASETS if n in args.datasets]
    if not names:
        return
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.6))
    for ax, name in zip(np.atleast_1d(axes), names, strict=True):
        metric, label = metric_of(name)
        biases = args.cheetah_biases if name == CHEETAH else args.biases
        for partition, curve in ((True, "HIPI-BC (with log Z)"), (False, "without log Z")):
            values = np.array([fig8[name, partition, b][metric] for b in biases])
            ax.errorbar(biases, values.mean(axis=1), yerr=values.std(axis=1), label=curve)
        ax.set_xlabel("per-step reward bias on the first task", fontsize=8)
        ax.set_ylabel(f"{label} (best-validation policy)", fontsize=8)
        if name == CHEETAH:
            ax.set_title("half_cheetah, first-candidate bias", fontsize=9)
        else:
            ax.set_ylim(0, 1.05)
            ax.set_title("pointnav goals8, first-task bias", fontsize=9)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(img, "hipi_bc_fig8.png"), dpi=120)
    plt.close(fig)


def sections_of(args: Args) -> dict[str, list[str]]:
    """Fig. 7 section of the doc -> the datasets of this run that it shows."""
    sections = {}
    for name in args.datasets:
        sections.setdefault(fig7_section(name), []).append(name)
    return sections


def command_of(args: Args, names: list[str]) -> str:
    """The command that regenerates the results of datasets `names`."""
    command = f"python experiments/hipi_bc_figures.py --num-seeds {args.num_seeds}"
    if any(name in POINTNAV for name in names):
        command += f" --num-trajectories {args.num_trajectories} --max-epochs {args.max_epochs}"
    if tuple(names) != Args.datasets:
        command += f" --datasets {' '.join(names)}"
    for name in (n for n in FILE_DATASETS if n in names):
        command += (
            f" --{name}-dataset {getattr(args, f'{name}_dataset')} --{name}-max-epochs "
            f"{getattr(args, f'{name}_max_epochs')} --{name}-eval-episodes "
            f"{getattr(args, f'{name}_eval_episodes')}"
        )
    if CHEETAH in names and args.cheetah_biases != Args.cheetah_biases:
        command += f" --cheetah-biases {' '.join(f'{b:g}' for b in args.cheetah_biases)}"
    return command


def budget_of(args: Args, names: list[str]) -> str:
    """What the results of datasets `names` cost, in words."""
    budget = []
    if any(name in POINTNAV for name in names):
        budget.append(
            f"pointnav: {args.num_trajectories} scripted-expert demonstrations per dataset "
            f"(noise {args.noise}), at most {args.max_epochs} BC epochs, "
            f"{args.eval_episodes} evaluation episodes per seed"
        )
    for name in (n for n in FILE_DATASETS if n in names):
        path = getattr(args, f"{name}_dataset")
        budget.append(
            f"{FILE_DATASETS[name][0]}: the demonstrations of `{path}`, "
            f"at most {getattr(args, f'{name}_max_epochs')} BC epochs, "
            f"{getattr(args, f'{name}_eval_episodes')} evaluation episodes per seed"
        )
    budget.append(f"{args.num_seeds} seeds; 2-core CPU, no GPU")
    return "; ".join(budget)


def main(args: Args) -> None:
    start = time.time()
    if any(name in FILE_DATASETS for name in args.datasets):  # MJX evaluation compiles once
        jax.config.update("jax_compilation_cache_dir", os.path.join(args.out_dir, "jax_cache"))
    tables7, fig7 = figure7(args)
    tables8, fig8 = figure8(args)
    plot(args, fig7, fig8)
    doc = os.path.join(ROOT, args.doc)
    for section, names in sections_of(args).items():
        write_between_markers(
            doc,
            section,
            f"Regenerate with `{command_of(args, names)}` ({budget_of(args, names)}).\n\n"
            + "\n\n".join(tables7[section])
            + f"\n\n![Fig. 7 at CPU scale](img/{fig7_image(section)})",
        )
    if tables8:
        write_between_markers(
            doc,
            "hipi_bc_fig8",
            "\n\n".join(tables8) + "\n\n![Fig. 8 at CPU scale](img/hipi_bc_fig8.png)",
        )
    if CHEETAH in args.datasets:
        write_between_markers(doc, "hipi_bc_cheetah_demos", cheetah_demos_table(args))
    if QUADRUPED in args.datasets:
        write_between_markers(doc, "hipi_bc_quadruped_demos", quadruped_demos_table(args))
    print(f"figures and tables written in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main(cli.parse(Args))
