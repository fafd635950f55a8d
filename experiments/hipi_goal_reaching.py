"""HIPI Fig. 5 and Fig. 6 at CPU scale: SAC on one task family under each relabeling strategy.

For every strategy, `algos/hipi_rl.py` trains `--num-seeds` seeds side by side
on one env; the script writes mean ± std curves of an evaluation metric
(`--metric`: success for goal families and goal sets, return for linear rewards)
to `docs/img/hipi_<env>.png` and a final-value table into `docs/hipi_rl.md`
between marker comments. With `--reuse`, a strategy whose finished run with the
same flags is already in `--run-dir` is read instead of trained again, so the
strategies can be trained by separate invocations (e.g. in parallel) and
gathered into one figure by a last one.

    python experiments/hipi_goal_reaching.py --env-id pointnav --env-kwargs dim=2
    python experiments/hipi_goal_reaching.py --env-id reacher --env-kwargs family=goal_set \
        --strategies inverse_rl random none
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common import cli  # noqa: E402
from common.logger import ARGS_FILE, args_dict, read_metrics  # noqa: E402
from common.scripts import load_algo  # noqa: E402
from experiments.report import eval_curves, write_between_markers  # noqa: E402

STRATEGIES = ("inverse_rl", "future", "final", "random", "none")


@dataclass(frozen=True)
class Args:
    env_id: str = "pointnav"
    """env with continuous actions (see envs.ENV_IDS)"""
    env_kwargs: tuple[str, ...] = ("dim=2",)
    """env parameters as name=value pairs"""
    strategies: tuple[str, ...] = STRATEGIES
    """relabeling strategies to compare"""
    num_seeds: int = 3
    """seeds per strategy, vmapped in one process"""
    total_timesteps: int = 32_000
    """env steps per seed"""
    num_envs: int = 16
    """parallel environments per seed"""
    batch_size: int = 128
    """transitions per gradient step (half of them relabeled)"""
    gradient_steps: int = 2
    """gradient steps per iteration of hipi_rl.py"""
    num_candidates: int = 16
    """inverse_rl: candidate tasks taken from the batch's commanded tasks"""
    clip_q: bool = True
    """clip TD targets to the family's return range (--no-clip-q for families without bounds)"""
    num_chunks: int = 8
    """evaluation points"""
    eval_episodes: int = 100
    """evaluation episodes per seed at each point"""
    metric: str = "eval/success_rate"
    """what the curves and the table show (eval/episode_return for linear rewards)"""
    reuse: bool = False
    """read a strategy's finished run with the same flags from --run-dir instead of training"""
    out_dir: str = "docs"
    """where hipi_rl.md and img/ live"""
    run_dir: str = "runs/hipi_goal_reaching"
    """parent of the runs' logs"""

    def __post_init__(self):
        unknown = sorted(set(self.strategies) - set(STRATEGIES))
        if unknown or not self.strategies:
            raise cli.UsageError(
                f"--strategies takes one or more of {', '.join(STRATEGIES)}, got "
                f"{' '.join(self.strategies) or 'none'}"
            )
        for name in ("num_seeds", "total_timesteps", "num_envs", "num_chunks"):
            if getattr(self, name) < 1:
                raise cli.UsageError(f"--{name.replace('_', '-')} must be at least 1")
        if not self.metric.startswith("eval/"):
            raise cli.UsageError(f"--metric must be an eval/ metric, got {self.metric!r}")
        for strategy in self.strategies:  # hipi_rl.py checks each run's flags, before compiling
            algo_args(self, strategy)


def algo_args(args: Args, strategy: str):
    """The hipi_rl.py flags of one strategy's run (validated there, before compiling)."""
    module = load_algo("hipi_rl")
    return module.Args(
        env_id=args.env_id,
        env_kwargs=args.env_kwargs,
        relabel=strategy,
        num_seeds=args.num_seeds,
        total_timesteps=args.total_timesteps,
        num_envs=args.num_envs,
        batch_size=args.batch_size,
        gradient_steps=args.gradient_steps,
        num_candidates=args.num_candidates,
        clip_q=args.clip_q,
        num_chunks=args.num_chunks,
        eval_episodes=args.eval_episodes,
        run_dir=os.path.join(args.run_dir, strategy),
        quiet=True,
    )


WALL_FILE = "wall_time.json"  # written into a run's directory when its training returns


def finished_run(run_args) -> str | None:
    """The newest run under `run_args.run_dir` that finished with exactly these flags."""
    if not os.path.isdir(run_args.run_dir):
        return None
    names = os.listdir(run_args.run_dir)
    finished = {n for n in names if os.path.exists(os.path.join(run_args.run_dir, n, WALL_FILE))}
    return newest_run_with_flags(run_args, finished)


def newest_run_with_flags(run_args, names: set[str]) -> str | None:
    """Of the run directories `names` under `run_args.run_dir`, the newest one trained
    with exactly `run_args`' flags (another process may have started a run beside it)."""
    flags = args_dict(run_args)
    found = []
    for name in names:
        path = os.path.join(run_args.run_dir, name)
        with open(os.path.join(path, ARGS_FILE)) as f:
            saved = json.load(f)
        if all(saved.get(k) == v for k, v in flags.items()):
            found.append((os.path.getmtime(path), path))
    return max(found)[1] if found else None


def run_strategy(args: Args, strategy: str) -> dict:
    run_args = algo_args(args, strategy)
    path = finished_run(run_args) if args.reuse else None
    if path is None:
        os.makedirs(run_args.run_dir, exist_ok=True)
        before = set(os.listdir(run_args.run_dir))
        start = time.time()
        load_algo("hipi_rl").main(run_args)
        path = newest_run_with_flags(run_args, set(os.listdir(run_args.run_dir)) - before)
        with open(os.path.join(path, WALL_FILE), "w") as f:
            json.dump({"wall_seconds": time.time() - start}, f)
    with open(os.path.join(path, WALL_FILE)) as f:
        wall = json.load(f)["wall_seconds"]
    steps, values = eval_curves(read_metrics(path), args.metric)
    return {"strategy": strategy, "steps": steps, "values": values, "wall": wall}


def command_of(args: Args) -> str:
    """The command line that regenerates this result: the flags that differ from the defaults."""
    words = ["python experiments/hipi_goal_reaching.py"]
    for field in dataclasses.fields(Args):
        value = getattr(args, field.name)
        if field.name in ("out_dir", "run_dir", "reuse") or value == field.default:
            continue
        flag = f"--{field.name.replace('_', '-')}"
        if isinstance(value, bool):
            words.append(flag if value else f"--no-{flag[2:]}")
        elif isinstance(value, tuple):
            words.extend([flag, *value])
        else:
            words.extend([flag, str(value)])
    return " ".join(words)


def plot(args: Args, results: list[dict], image: str) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, r in enumerate(results):
        mean, std = r["values"].mean(axis=1), r["values"].std(axis=1)
        ax.plot(r["steps"], mean, color=f"C{i}", label=r["strategy"])
        ax.fill_between(r["steps"], mean - std, mean + std, color=f"C{i}", alpha=0.2, lw=0)
    ax.set_title(f"hipi_rl.py on {args.env_id} {' '.join(args.env_kwargs)}")
    ax.set_xlabel("env steps per seed")
    ax.set_ylabel(f"{args.metric} (mean ± std, {args.num_seeds} seeds)")
    if args.metric.endswith("success_rate"):
        ax.set_ylim(-0.03, 1.03)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(image, dpi=120)
    plt.close(fig)


def main(args: Args) -> None:
    results = [run_strategy(args, s) for s in args.strategies]
    name = "_".join([args.env_id, *(kw.replace("=", "") for kw in args.env_kwargs)])
    image = os.path.join(args.out_dir, "img", f"hipi_{name}.png")
    os.makedirs(os.path.dirname(image), exist_ok=True)
    plot(args, results, image)
    lines = [
        f"| relabel | env steps per seed | final {args.metric} (mean ± std) | per seed "
        "| wall time |",
        "| --- | ---: | ---: | --- | ---: |",
    ]
    for r in results:
        final = r["values"][-1]
        lines.append(
            f"| {r['strategy']} | {r['steps'][-1]:,} | {final.mean():.2f} ± "
            f"{final.std():.2f} | {', '.join(f'{v:.2f}' for v in final)} | "
            f"{r['wall'] / 60:.1f} min |"
        )
    body = (
        f"Regenerate with `{command_of(args)}` (2-core CPU, no GPU; wall time per strategy "
        "includes compilation).\n\n"
        + "\n".join(lines)
        + f"\n\n![{args.metric} vs env steps]({os.path.relpath(image, args.out_dir)})"
    )
    write_between_markers(os.path.join(args.out_dir, "hipi_rl.md"), f"hipi_{name}", body)
    print("\n".join(lines))


if __name__ == "__main__":
    main(cli.parse(Args))
