"""HIPI Fig. 5 at CPU scale: goal reaching with SAC under each relabeling strategy.

For every strategy, `algos/hipi_rl.py` trains `--num-seeds` seeds side by side
on one goal-reaching env; the script writes mean ± std curves of evaluation
success to `docs/img/hipi_<env>.png` and a final-success table into
`docs/hipi_rl.md` between marker comments.

    python experiments/hipi_goal_reaching.py --env-id pointnav --env-kwargs dim=2
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common import cli  # noqa: E402
from common.logger import read_metrics  # noqa: E402
from common.scripts import load_algo  # noqa: E402
from experiments.report import eval_curves, write_between_markers  # noqa: E402


@dataclass(frozen=True)
class Args:
    env_id: str = "pointnav"
    """goal-reaching env"""
    env_kwargs: tuple[str, ...] = ("dim=2",)
    """env parameters as name=value pairs"""
    strategies: tuple[str, ...] = ("inverse_rl", "future", "final", "random", "none")
    """relabeling strategies to compare"""
    num_seeds: int = 3
    """seeds per strategy, vmapped in one process"""
    total_timesteps: int = 32_000
    """env steps per seed"""
    gradient_steps: int = 2
    """gradient steps per iteration of hipi_rl.py"""
    num_chunks: int = 8
    """evaluation points"""
    out_dir: str = "docs"
    """where hipi_rl.md and img/ live"""
    run_dir: str = "runs/hipi_goal_reaching"
    """parent of the runs' logs"""


def run_strategy(args: Args, strategy: str) -> dict:
    module = load_algo("hipi_rl")
    parent = os.path.join(args.run_dir, strategy)
    os.makedirs(parent, exist_ok=True)
    before = set(os.listdir(parent))
    algo_args = module.Args(
        env_id=args.env_id,
        env_kwargs=args.env_kwargs,
        relabel=strategy,
        num_seeds=args.num_seeds,
        total_timesteps=args.total_timesteps,
        gradient_steps=args.gradient_steps,
        num_chunks=args.num_chunks,
        run_dir=parent,
        quiet=True,
    )
    start = time.time()
    module.main(algo_args)
    (run,) = sorted(set(os.listdir(parent)) - before)
    steps, success = eval_curves(read_metrics(os.path.join(parent, run)))
    return {"strategy": strategy, "steps": steps, "success": success, "wall": time.time() - start}


def main(args: Args) -> None:
    results = [run_strategy(args, s) for s in args.strategies]
    name = "_".join([args.env_id, *(kw.replace("=", "") for kw in args.env_kwargs)])
    image = os.path.join(args.out_dir, "img", f"hipi_{name}.png")
    os.makedirs(os.path.dirname(image), exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, r in enumerate(results):
        mean, std = r["success"].mean(axis=1), r["success"].std(axis=1)
        ax.plot(r["steps"], mean, color=f"C{i}", label=r["strategy"])
        ax.fill_between(r["steps"], mean - std, mean + std, color=f"C{i}", alpha=0.2, lw=0)
    ax.set_title(f"hipi_rl.py on {args.env_id} {' '.join(args.env_kwargs)}")
    ax.set_xlabel("env steps per seed")
    ax.set_ylabel(f"eval success (mean ± std, {args.num_seeds} seeds)")
    ax.set_ylim(-0.03, 1.03)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(image, dpi=120)
    plt.close(fig)
    lines = [
        "| relabel | env steps per seed | final eval success (mean ± std) | per seed | wall time |",
        "| --- | ---: | ---: | --- | ---: |",
    ]
    for r in results:
        final = r["success"][-1]
        lines.append(
            f"| {r['strategy']} | {r['steps'][-1]:,} | {final.mean():.2f} ± "
            f"{final.std():.2f} | {', '.join(f'{v:.2f}' for v in final)} | "
            f"{r['wall'] / 60:.1f} min |"
        )
    command = " ".join(
        [
            "python experiments/hipi_goal_reaching.py --env-id",
            args.env_id,
            *(["--env-kwargs", *args.env_kwargs] if args.env_kwargs else []),
            "--strategies",
            *args.strategies,
            "--num-seeds",
            str(args.num_seeds),
            "--total-timesteps",
            str(args.total_timesteps),
            "--gradient-steps",
            str(args.gradient_steps),
        ]
    )
    body = (
        f"Regenerate with `{command}` (2-core CPU, no GPU).\n\n"
        + "\n".join(lines)
        + f"\n\n![eval success vs env steps]({os.path.relpath(image, args.out_dir)})"
    )
    write_between_markers(os.path.join(args.out_dir, "hipi_rl.md"), f"hipi_{name}", body)
    print("\n".join(lines))


if __name__ == "__main__":
    main(cli.parse(Args))
