"""DQN + HER side by side with Stable-Baselines3, the library a user would pick instead:
SB3's `DQN` with its `HerReplayBuffer` (`future`, k = 4) on SB3's own `BitFlippingEnv`,
and `algos/her_dqn.py` on our bit flip, the same n.

    pip install -e ".[peers]"        # torch and stable-baselines3, never in the default install
    python benchmarks/vs_sb3.py --n-bits 20 30

For each n and each side: env steps and wall clock until the greedy policy solves
≥ 90 % of `--eval-episodes` fresh episodes, evaluated every `--eval-every` env steps.
Evaluation is not timed on either side.

- SB3: one seed after another, each stopped at its first evaluation ≥ 0.9 (or at
  `--budget` steps); SB3's defaults for DQN (learning rate 1e-4, batch 32, one update
  every 4 steps, a target network copied every 10k steps, ε from 1 to 0.05 over the
  first 10 % of the budget, 64 × 64 units) with HER's buffer. The 8-seed wall clock is
  the sum of the seeds' times: SB3 trains one seed per process.
- ours: `her_dqn.py` with `--total-timesteps --budget`, at its defaults (16 envs, 2
  updates of 128 per iteration, ε decaying over 30 % of the budget) and at
  `SAMPLE_EFFICIENT` (8 envs, 4 updates of 256, ε over 10 %); the seeds vmapped in one
  program, chunks of `--eval-every` steps; wall clock includes the compilation
  (reported too), and the 8-seed time is when the last seed reaches 0.9.

Env steps to 0.9 are the median over seeds, a seed that never gets there counting as
the budget.
Prints one line per n and method; `--rows-out FILE` appends one JSON row for each.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from dataclasses import dataclass

import jax
import numpy as np
import tyro

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import training  # noqa: E402
from harness.algos_loader import load_algo  # noqa: E402
from harness.records import append_row  # noqa: E402

MISSING = (
    "benchmarks/vs_sb3.py needs torch and stable-baselines3, which the default install "
    'leaves out: pip install -e ".[peers]"'
)


@dataclass(frozen=True)
class Args:
    n_bits: tuple[int, ...] = (20, 30)
    """bit flip sizes to compare"""
    seeds: int = 8
    """seeds per side (ours: vmapped in one program; SB3: one after another)"""
    budget: int = 100_000
    """env steps per seed at most"""
    eval_every: int = 1_000
    """env steps between evaluations"""
    eval_episodes: int = 100
    """episodes per evaluation"""
    threshold: float = 0.9
    """the eval success that counts as solved"""
    rows_out: str | None = None
    """append one JSON row per n to this file"""


def check(args: Args) -> None:
    """One sentence and exit 2 for bad input, before anything is imported or compiled."""
    problems = [
        (not args.n_bits or min(args.n_bits) < 1, f"--n-bits must be ≥ 1, got {args.n_bits}"),
        (args.seeds < 1, f"--seeds must be positive, got {args.seeds}"),
        (args.eval_every < 1, f"--eval-every must be positive, got {args.eval_every}"),
        (args.budget < args.eval_every, "--budget must be at least --eval-every"),
        (args.eval_episodes < 1, f"--eval-episodes must be positive, got {args.eval_episodes}"),
        (not 0 < args.threshold <= 1, f"--threshold must be in (0, 1], got {args.threshold}"),
    ]
    for bad, sentence in problems:
        if bad:
            print(f"error: {sentence}", file=sys.stderr)
            raise SystemExit(2)
    try:
        import stable_baselines3  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        print(f"error: {MISSING}", file=sys.stderr)
        raise SystemExit(2) from None


# ---------------------------------------------------------------- SB3
def sb3_seed(args: Args, n: int, seed: int) -> tuple[int | None, float]:
    """(env steps, training seconds) of one SB3 seed until eval success ≥ threshold; the
    steps are None when the budget ran out first."""
    import torch
    from stable_baselines3 import DQN, HerReplayBuffer
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.envs import BitFlippingEnv

    torch.set_num_threads(1)  # SB3's small networks run fastest on one thread
    eval_env = BitFlippingEnv(n_bits=n, continuous=False, max_steps=n)

    def success(model) -> float:
        solved = 0
        for episode in range(args.eval_episodes):
            obs, _ = eval_env.reset(seed=10_000 * seed + episode)
            done = False
            while not done:
                action, _ = model.predict(obs, deterministic=True)
                obs, _, terminated, truncated, info = eval_env.step(action)
                done = terminated or truncated
            solved += bool(info.get("is_success", False))
        return solved / args.eval_episodes

    class Clock(BaseCallback):
        def __init__(self):
            super().__init__()
            self.seconds, self.start, self.solved_at = 0.0, time.perf_counter(), None

        def _on_step(self) -> bool:
            if self.num_timesteps % args.eval_every:
                return True
            self.seconds += time.perf_counter() - self.start
            if success(self.model) >= args.threshold:
                self.solved_at = self.num_timesteps
                return False
            self.start = time.perf_counter()
            return True

    model = DQN(
        "MultiInputPolicy",
        BitFlippingEnv(n_bits=n, continuous=False, max_steps=n),
        replay_buffer_class=HerReplayBuffer,
        replay_buffer_kwargs=dict(n_sampled_goal=4, goal_selection_strategy="future"),
        seed=seed,
        device="cpu",
    )
    clock = Clock()
    model.learn(total_timesteps=args.budget, callback=clock)
    return clock.solved_at, clock.seconds


# ---------------------------------------------------------------- ours
# her_dqn.py's defaults update twice per 16 env steps; this setting four times per 8, on
# larger batches, with ε decaying over the first 10 % of the budget (as SB3's does)
SAMPLE_EFFICIENT = dict(num_envs=8, gradient_steps=4, batch_size=256, exploration_fraction=0.1)
SETTINGS = {"ours, defaults": {}, "ours, 8 envs × 4 updates": SAMPLE_EFFICIENT}


def ours(args: Args, n: int, num_seeds: int, setting: dict) -> tuple[list[int], float, float]:
    """(env steps per seed until eval success ≥ threshold, None for a seed that never got
    there; wall seconds until the last seed got there or the budget ran out; compile
    seconds) of her_dqn.py, `num_seeds` seeds vmapped."""
    module = load_algo("her_dqn")
    run_args = module.Args(
        env_id="bitflip",
        env_kwargs=(f"n_bits={n}",),
        total_timesteps=args.budget,
        num_chunks=args.budget // args.eval_every,
        eval_episodes=args.eval_episodes,
        buffer_size=max(args.budget, 10_000),  # every transition of the run
        quiet=True,
        **setting,
    )
    trainer = module.make_train(run_args)
    keys = training.seed_keys(1, num_seeds)
    start = time.perf_counter()
    init = jax.jit(jax.vmap(trainer.init))
    chunk = jax.jit(jax.vmap(trainer.train_chunk), donate_argnums=0)
    evaluate = jax.jit(jax.vmap(trainer.evaluate))
    state = init(keys)
    chunk = chunk.lower(state).compile()
    evaluate = evaluate.lower(state, keys).compile()
    compile_s = time.perf_counter() - start
    clock, steps, solved = compile_s, [args.budget] * num_seeds, [False] * num_seeds
    for index in range(run_args.num_chunks):
        start = time.perf_counter()
        state, metrics = chunk(state)
        jax.block_until_ready(metrics)
        clock += time.perf_counter() - start
        success = np.asarray(evaluate(state, training.eval_keys(keys, index))["eval/success_rate"])
        for seed in np.flatnonzero(success >= args.threshold):
            if not solved[seed]:
                solved[seed], steps[seed] = True, (index + 1) * trainer.steps_per_chunk
        if all(solved):
            break
    return [s if done else None for s, done in zip(steps, solved, strict=True)], clock, compile_s


def main(args: Args) -> list[dict]:
    check(args)
    rows = []
    for n in args.n_bits:
        sb3 = [sb3_seed(args, n, seed) for seed in range(args.seeds)]
        results = {
            "SB3 DQN + HER, defaults": (
                [s for s, _ in sb3],
                statistics.median(t for _, t in sb3),
                sum(t for _, t in sb3),
                0.0,
            )
        }
        for name, setting in SETTINGS.items():
            one_steps, one_clock, _ = ours(args, n, 1, setting)
            steps, clock, compile_s = ours(args, n, args.seeds, setting)
            results[name] = (steps, one_clock, clock, compile_s)
        sb3_one, sb3_all = results["SB3 DQN + HER, defaults"][1:3]
        for name, (steps, one, every, compile_s) in results.items():
            row = {
                "n_bits": n,
                "method": name,
                # a seed that never got there counts as the budget
                "steps_to_threshold": statistics.median(
                    args.budget if s is None else s for s in steps
                ),
                "solved": sum(s is not None for s in steps),
                "seeds": args.seeds,
                "seconds_1": one,
                "seconds_all": every,
                "compile": compile_s,
                "speedup_1": sb3_one / one,
                "speedup_all": sb3_all / every,
            }
            print(
                f"bit flip n = {n}, {name}: {row['steps_to_threshold']:,.0f} env steps to "
                f"{args.threshold} (median of {args.seeds} seeds, {row['solved']} solved); "
                f"1 seed {one:.1f} s ({row['speedup_1']:.1f}x SB3); {args.seeds} seeds "
                f"{every:.1f} s ({row['speedup_all']:.1f}x SB3), compile {compile_s:.1f} s",
                flush=True,
            )
            append_row(args.rows_out, row)
            rows.append(row)
    return rows


if __name__ == "__main__":
    main(tyro.cli(Args))
