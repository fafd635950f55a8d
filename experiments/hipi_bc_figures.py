"""HIPI-BC at CPU scale: the comparisons of Fig. 7 (relabeled vs task-agnostic behaviour
cloning) and Fig. 8 (a bias on the first task's reward, with and without the partition
function) of Eysenbach et al. 2020, on scripted-expert point-navigation datasets.

Writes docs/img/hipi_bc_fig7.png, docs/img/hipi_bc_fig8.png and the results tables of
docs/hipi_bc.md. Every configuration's result is cached as JSON under `--out-dir`, so an
interrupted run resumes where it stopped.

    python experiments/hipi_bc_figures.py --num-seeds 5
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common import cli  # noqa: E402
from common.scripts import ROOT, load_algo  # noqa: E402
from experiments import collect_demos  # noqa: E402
from experiments.report import write_between_markers  # noqa: E402

# name -> (env kwargs, what it stands in for)
DATASETS = {
    "goals8": (("num_goals=8",), "a discrete task set (the paper's desk environment)"),
    "goals2d": ((), "continuous goals (the paper's continuous task families)"),
}
# method -> (hipi_bc.py flags, label); `reached` applies to goal families only
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
    num_trajectories: int = 1000
    """demonstrations per dataset"""
    noise: float = 0.1
    """action noise of the scripted expert"""
    max_epochs: int = 10
    """BC epochs at most (early stopping may end a seed sooner)"""
    biases: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0)
    """Fig. 8: per-step reward biases added to the first task"""
    eval_episodes: int = 500
    """evaluation episodes per seed"""
    out_dir: str = "runs/hipi_bc_figures"
    """datasets, per-configuration results and run logs"""
    doc: str = "docs/hipi_bc.md"
    """markdown file whose generated sections are rewritten"""

    def __post_init__(self):
        for name in ("num_seeds", "num_trajectories", "max_epochs", "eval_episodes"):
            if getattr(self, name) <= 0:
                raise cli.UsageError(f"--{name.replace('_', '-')} must be positive")


def dataset_path(args: Args, name: str) -> str:
    path = os.path.join(args.out_dir, "data", f"{name}.npz")
    if not os.path.exists(path):
        collect_demos.main(
            collect_demos.Args(
                env_id="pointnav",
                env_kwargs=DATASETS[name][0],
                noise=args.noise,
                num_trajectories=args.num_trajectories,
                out=path,
            )
        )
    return path


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
            max_epochs=args.max_epochs,
            eval_every=args.max_epochs,
            eval_episodes=args.eval_episodes,
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


def mean_std(values) -> str:
    values = np.asarray(values)
    return f"{values.mean():.2f} ± {values.std():.2f}"


def figure7(args: Args) -> tuple[str, dict]:
    results = {}
    for name in DATASETS:
        path = dataset_path(args, name)
        for method, (flags, _) in FIG7_METHODS.items():
            if method == "reached" and DATASETS[name][0]:
                continue  # a finite set: the candidates are always the whole set
            results[name, method] = run_config(args, f"fig7_{name}_{method}", dataset=path, **flags)
    rows = [
        "| dataset | method | eval success (mean ± std) | per seed | relabel task error | epochs |",
        "| --- | --- | ---: | --- | ---: | ---: |",
    ]
    for (name, method), r in results.items():
        error = r.get("relabel/task_error")
        rows.append(
            f"| {name} | {FIG7_METHODS[method][1]} | {mean_std(r['eval/success_rate_best'])} | "
            f"{', '.join(f'{x:.2f}' for x in r['eval/success_rate_best'])} | "
            f"{'' if error is None else f'{np.mean(error):.3f}'} | "
            f"{np.mean(r['charts/epochs']):.1f} |"
        )
    return "\n".join(rows), results


def figure8(args: Args) -> tuple[str, dict]:
    path = dataset_path(args, "goals8")
    results = {}
    for partition in (True, False):
        for bias in args.biases:
            key = f"fig8_bias{bias:g}_{'partition' if partition else 'nopartition'}"
            results[partition, bias] = run_config(
                args, key, dataset=path, reward_bias=bias, partition=partition
            )
    rows = [
        "| per-step bias on task 0 | log Z | eval success (mean ± std) | trajectories "
        "relabeled to task 0 | relabel accuracy |",
        "| ---: | --- | ---: | ---: | ---: |",
    ]
    for (partition, bias), r in results.items():
        rows.append(
            f"| {bias:g} | {'with' if partition else 'without'} | "
            f"{mean_std(r['eval/success_rate_best'])} | "
            f"{np.mean(r['relabel/first_task_fraction']):.3f} | "
            f"{np.mean(r['relabel/label_accuracy']):.3f} |"
        )
    return "\n".join(rows), results


def plot(args: Args, fig7: dict, fig8: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img = os.path.join(ROOT, "docs", "img")
    os.makedirs(img, exist_ok=True)
    fig, axes = plt.subplots(1, len(DATASETS), figsize=(5 * len(DATASETS), 3.6), sharey=True)
    for ax, name in zip(np.atleast_1d(axes), DATASETS, strict=True):
        methods = [m for m in FIG7_METHODS if (name, m) in fig7]
        values = [np.asarray(fig7[name, m]["eval/success_rate_best"]) for m in methods]
        x = np.arange(len(methods))
        ax.bar(x, [v.mean() for v in values], yerr=[v.std() for v in values], color="C0")
        for i, v in enumerate(values):
            ax.scatter(np.full(v.shape, i), v, color="k", s=8, zorder=3)
        short = {"reached": "HIPI-BC,\nreached goals"}
        labels = [short.get(m, FIG7_METHODS[m][1]) for m in methods]
        ax.set_xticks(x, labels, rotation=20, fontsize=8)
        ax.set_title(f"pointnav {name}: {DATASETS[name][1].split(' (')[0]}", fontsize=9)
        ax.set_ylim(0, 1.05)
    np.atleast_1d(axes)[0].set_ylabel("eval success (best-validation policy)")
    fig.tight_layout()
    fig.savefig(os.path.join(img, "hipi_bc_fig7.png"), dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3.6))
    for partition, label in ((True, "HIPI-BC (with log Z)"), (False, "without log Z")):
        values = np.array([fig8[partition, b]["eval/success_rate_best"] for b in args.biases])
        ax.errorbar(args.biases, values.mean(axis=1), yerr=values.std(axis=1), label=label)
    ax.set_xlabel("per-step reward bias on the first task")
    ax.set_ylabel("eval success (best-validation policy)")
    ax.set_ylim(0, 1.05)
    ax.legend()
    ax.set_title("pointnav goals8, first-task bias", fontsize=9)
    fig.tight_layout()
    fig.savefig(os.path.join(img, "hipi_bc_fig8.png"), dpi=120)
    plt.close(fig)


def main(args: Args) -> None:
    start = time.time()
    table7, fig7 = figure7(args)
    table8, fig8 = figure8(args)
    plot(args, fig7, fig8)
    budget = (
        f"{args.num_trajectories} scripted-expert demonstrations per dataset (noise "
        f"{args.noise}), at most {args.max_epochs} BC epochs, {args.num_seeds} seeds, "
        f"{args.eval_episodes} evaluation episodes per seed; 2-core CPU, no GPU"
    )
    command = (
        f"python experiments/hipi_bc_figures.py --num-seeds {args.num_seeds} "
        f"--num-trajectories {args.num_trajectories} --max-epochs {args.max_epochs}"
    )
    doc = os.path.join(ROOT, args.doc)
    write_between_markers(
        doc,
        "hipi_bc_fig7",
        f"Regenerate with `{command}` ({budget}).\n\n{table7}\n\n"
        "![Fig. 7 at CPU scale](img/hipi_bc_fig7.png)",
    )
    write_between_markers(
        doc, "hipi_bc_fig8", f"{table8}\n\n![Fig. 8 at CPU scale](img/hipi_bc_fig8.png)"
    )
    print(f"figures and tables written in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main(cli.parse(Args))
