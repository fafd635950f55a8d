"""Every reported measurement of benchmarks/, as data: the command that measures it, and
which columns of its rows a doc shows. `python experiments/sweep.py <table>` measures,
`python experiments/report.py <table>` writes the section between the `<table>` markers."""

from __future__ import annotations

from harness.specs import Column, Table

PERFORMANCE = "docs/performance.md"

THROUGHPUT = Table(
    name="throughput",
    doc=PERFORMANCE,
    command=tuple(
        "python benchmarks/throughput.py --envs bitflip pointnav four_rooms "
        "--num-envs 1 64 1024 --repeats 5".split()
    ),
    columns=(
        Column("env", "env"),
        Column("algorithm", "algo"),
        Column("num_envs", "num_envs", "d"),
        Column("env-only steps/s", "env_sps"),
        Column("env compile s", "env_compile_s", ".1f"),
        Column("training env steps/s", "train_sps"),
        Column("gradient updates/s", "updates_per_s"),
        Column("training compile s", "train_compile_s", ".1f"),
        Column("init compile s", "init_compile_s", ".1f"),
        Column("CPU cores used, env", "env_cores", ".2f"),
        Column("CPU cores used, training", "train_cores", ".2f"),
    ),
    text=(
        "Medians of 5 timed samples, each after a compile and a warm-up call.\n\n"
        "- **env-only steps/s**: a jitted `lax.scan` of S steps of `vmap(env.step)` over "
        "`num_envs` envs with random actions drawn inside the scan; S × num_envs / seconds, "
        "S chosen so that a call lasts about 0.5 s. **env compile s**: `.lower().compile()` "
        "of that scan.\n"
        "- **training env steps/s**: `jax.jit(jax.vmap(train_chunk), donate_argnums=0)` of the "
        "env's algorithm (bitflip: `algos/her_dqn.py`; pointnav, four_rooms: `algos/her.py`), "
        "one seed, `learning_starts=0`, the default batch size and gradient steps per "
        "iteration (every env steps once per iteration), her_dqn chunks of 200 and her chunks "
        "of 25 iterations, a buffer of max(4 × episode length × num_envs, 100 000) transitions; "
        "env steps per chunk × chunk calls / seconds. Evaluation is not timed. **gradient "
        "updates/s**: iterations × gradient steps / seconds. **training compile s**: "
        "`.lower().compile()` of the chunk; **init compile s**: the first call of "
        "`jax.jit(jax.vmap(init))` (compile and run).\n"
        "- **CPU cores used**: this process's CPU time / wall time over the timed samples. XLA "
        "may use every core; a value well below the core count means other processes held "
        "the cores."
    ),
)


def vs_brax_sac(env_id: str, iterations: int, repeats: int = 2, note: str = "") -> Table:
    runs = (
        "one run of each side"
        if repeats == 1
        else f"medians of {repeats} alternating runs of each side"
    )
    chunks = "one timed chunk" if repeats == 1 else f"the median of {repeats} timed chunks"
    return Table(
        name=f"vs_brax_sac_{env_id}",
        doc=PERFORMANCE,
        command=tuple(
            f"python benchmarks/vs_brax_sac.py --env-id {env_id} --num-envs 128 1024 "
            f"--repeats {repeats} --iterations {iterations}".split()
        ),
        columns=(
            Column("env", "env"),
            Column("num_envs", "num_envs", "d"),
            Column("ours (steps/s)", "ours_sps"),
            Column("brax SAC (steps/s)", "brax_sps"),
            Column("ratio", "ratio", ".2f"),
            Column("compile ours (s)", "ours_compile", ".1f"),
            Column("compile brax (s)", "brax_compile", ".1f"),
            Column("env alone (steps/s)", "env_sps"),
            Column("ours / env alone", "ours_over_env", ".3f"),
        ),
        text=(
            f"Plain SAC (`algos/hipi_rl.py --relabel none`) against brax's own SAC trainer "
            f"(`brax.training.agents.sac`) on {env_id}, which brax's trainer steps through "
            "`BraxAdapter` with its own episode and auto-reset wrappers. Both sides: the same "
            "number of envs, batch 256, 2 × 256 hidden units, one gradient step per step of "
            "all envs, observation normalisation, the same replay capacity, no Q-value "
            f"clipping. Env steps per second of training after compilation, {runs}. Ours: "
            "`train_chunk` compiled ahead of time, one chunk past learning starts, then "
            f"{chunks} of {iterations} iterations; brax: its "
            "own `training/sps` of its second training epoch, compile time the first epoch's "
            f"time minus the second's. **env alone**: {iterations} steps of `Env.step_batch` "
            "with random actions under one jit, timed for at least 2 s (the ceiling of both "
            f"trainers).{note}"
        ),
    )


# Smaller than the script's default grid (1 to 4096 envs, chunks of 20 iterations), which
# on the shared 2-core machine had done 14 of its 24 num_envs measurements after 8.5 minutes.
SCALING_COMMAND = tuple("python benchmarks/scaling.py --num-envs 1 64 1024 --iterations 10".split())
SCALING_RUN = (
    "`learning_starts=0`, default batch and networks, AOT-compiled as "
    "`harness/training.Run.compile` compiles it, one warm-up call, then the median of 3 chunks of "
    "10 iterations."
)

SCALING = Table(
    name="scaling",
    doc=PERFORMANCE,
    command=SCALING_COMMAND,
    where=(("kind", "envs"),),
    columns=(
        Column("script / env", "setup"),
        Column("envs", "num_envs", "d"),
        Column("env steps/s", "sps"),
        Column("compile s", "compile_s", ".1f"),
    ),
    text=(
        "Training env steps/s of each script's `train_chunk` against the number of parallel "
        f"envs, one seed, {SCALING_RUN} `sac` is `algos/hipi_rl.py --relabel none`, "
        "`hipi_rl` its inverse-RL relabeling (16 candidate tasks). The grid (1, 64 and 1024 "
        "envs, chunks of 10 iterations) is smaller than the script's default (1 to 4096 envs, "
        "chunks of 20 iterations), to measure in about a quarter of an hour on a shared 2-core "
        "machine."
    ),
)

SCALING_SEEDS = Table(
    name="scaling_seeds",
    doc=PERFORMANCE,
    command=SCALING_COMMAND,
    record="scaling",
    where=(("kind", "seeds"),),
    columns=(
        Column("seeds", "num_seeds", "d"),
        Column("env steps/s, all seeds", "sps"),
        Column("wall seconds per seed per 1k env steps", "seconds_per_seed_per_1k_steps", ".3f"),
        Column("compile s", "compile_s", ".1f"),
    ),
    text=f"Seeds vmapped in one program: SAC on pointnav, 64 envs per seed, {SCALING_RUN}",
)

SCALING_SPLIT = Table(
    name="scaling_split",
    doc=PERFORMANCE,
    command=SCALING_COMMAND,
    record="scaling",
    where=(("kind", "split"),),
    columns=(
        Column("script / env", "setup"),
        Column("envs", "num_envs", "d"),
        Column("ms per update", "update_ms", ".2f"),
        Column("updates/s", "updates_per_s"),
        Column("env side alone, steps/s", "env_side_sps"),
        Column("env-only stepping, steps/s", "env_only_sps"),
        Column("env side / env-only", "env_side_over_env_only", ".2f"),
        Column("training with 1 update per iteration, steps/s", "train_sps_1_update"),
    ),
    text=(
        "Where an iteration's time goes: SAC timed with 1 and with 5 gradient steps per "
        f"iteration, {SCALING_RUN} The difference gives the cost of one update; extrapolated "
        "to zero updates, the cost of the env side alone (act, step, insert), compared with "
        "env-only stepping (`jax.vmap(env.step)` with random actions in a jitted scan of 10 "
        'steps). "–": below the timing noise of the run (the env side is then under 2 % of '
        "an iteration)."
    ),
)

SCALING_DEVICES = Table(
    name="scaling_devices",
    doc=PERFORMANCE,
    command=SCALING_COMMAND,
    record="scaling",
    where=(("kind", "devices"),),
    columns=(
        Column("devices", "num_devices", "d"),
        Column("env steps/s", "sps"),
        Column("relative to 1 device", "relative_to_1_device", ".2f"),
        Column("compile s", "compile_s", ".1f"),
    ),
    text=(
        "Devices: SAC on pointnav, 1024 envs split over `--num-devices`, each count in its own "
        "process with CPU devices forced by `XLA_FLAGS=--xla_force_host_platform_device_count`, "
        "so they share the same cores: this measures the cost of the collectives, not a "
        f"speed-up. {SCALING_RUN}"
    ),
)

ENVS = "docs/envs.md"

MJX_ENVS = Table(
    name="mjx_envs",
    doc=ENVS,
    command=("python", "benchmarks/envs.py", "--num-envs", "1", "2048"),
    where=(("kind", "throughput"),),
    columns=(
        Column("env", "env"),
        Column("physics", "physics"),
        Column("N", "num_envs", "d"),
        Column("env steps/s", "steps_per_second"),
        Column("compile (s)", "compile_seconds", ".1f"),
        Column("load avg", "load", ".1f"),
    ),
    text=(
        "Env-only throughput: `jit(scan(env.step_batch))` (the vmapped step the training "
        "scripts call) of 10 steps with random actions, auto-reset included, called back to "
        "back for at least 3 s after a warm-up call; compile time is `.lower().compile()` of "
        "that program. The load average (1 min) at the end of each measurement shows how busy "
        "the machine was. 1 and 2048 envs only, of the script's default 1, 16, 256 and 2048, "
        "to measure both tables in about a quarter of an hour on a shared 2-core machine."
    ),
)

MJX_ENVS_RANDOM_POLICY = Table(
    name="mjx_envs_random_policy",
    doc=ENVS,
    command=MJX_ENVS.command,
    record="mjx_envs",
    where=(("kind", "random_policy"),),
    columns=(
        Column("env", "env"),
        Column("family", "family"),
        Column("episode length", "episode_length", "d"),
        Column("episodes", "episodes", "d"),
        Column("mean return", "mean_return", ".2f"),
        Column("success rate", "success_rate", ".3f"),
    ),
    text=(
        "Random policy (uniform actions in [−1, 1]) in 128 envs for 2 episode lengths, over "
        "the episodes that finished: the mean undiscounted return and the fraction of "
        "episodes that succeeded at least once. A goal family's success rate is the fraction "
        "of episodes that reached the goal. half_cheetah's is its diagnostic "
        "(|v − ψ| <= 0.1 m/s at some step), which neither rewards nor terminates; linear "
        "families have no success (–)."
    ),
)

BUFFER = Table(
    name="buffer",
    doc="docs/buffer.md",
    command=("python", "benchmarks/buffer.py"),
    columns=(
        Column("buffer", "buffer"),
        Column("N", "num_envs", "d"),
        Column("insert µs/call", "insert_us", ".0f"),
        Column("insert µs in scan", "insert_scan_us", ".1f"),
        Column("sample+goal µs/call", "sample_us", ".0f"),
        Column("sample+goal µs in scan", "sample_scan_us", ".1f"),
        Column("compile insert ms", "compile_insert_ms", ".0f"),
        Column("compile sample ms", "compile_sample_ms", ".0f"),
        Column("goals outside episode", "goal_leaves_episode", ".0%"),
    ),
    text=(
        'common/buffer.py ("ours") against flashbax\'s trajectory buffer, in one process, '
        "calls of the buffers interleaved (order rotated). Capacity 10⁶ transitions of 170 "
        "bytes, full and wrapped, episode lengths uniform in [1, 50]; a sample is 256 "
        'transitions and a HER `future` goal for each. Medians over 200 repeats: "in scan" '
        'is per operation inside a `lax.scan` of 100 (what a training chunk sees), "per '
        'call" one jitted call from Python, dispatch included. "Goals outside episode" is '
        "measured on the data (the synthetic stream stores the episode id in `reward`). The "
        "command needs flashbax importable (see `benchmarks/buffer.py`); `--no-flashbax` "
        "measures ours alone."
    ),
)

# half_cheetah's programs compile about twice as long as the reacher's, whose comparison
# with 2 runs of each side took 17 minutes on the shared 2-core machine.
HALF_CHEETAH_NOTE = (
    " One run of each side instead of two as on the other envs, to measure in about a quarter "
    "of an hour on a shared 2-core machine."
)

RELABEL_COST_COMMAND = tuple(
    "python benchmarks/relabel_cost.py --envs pointnav reacher --iterations 20 --repeats 3".split()
)
RELABEL_COST_COLUMNS = (
    Column("env", "env"),
    Column("batch", "batch_size", "d"),
    Column("relabeling", "relabel"),
    Column("ms per iteration", "iteration_ms", ".1f"),
    Column("relative to SAC", "relative_to_sac", ".2f"),
    Column("compile s", "compile_s", ".1f"),
)
RELABEL_COST_TEXT = (
    "`algos/hipi_rl.py`'s training iteration (16 envs step once, then 2 gradient steps), "
    "one seed, against the same program with `--relabel none` (plain SAC), timed in turns "
    "in one process: medians of 3 chunks of 20 iterations. `inverse_rl` is the default "
    "(`--num-candidates` {default} commanded tasks and as many reached goals), `-16` and "
    "`-4` set `--num-candidates`, `-no-achieved` drops the reached goals."
)
# the same command on the code before the relabeling-cost work (commit 7345f3b)
RELABEL_COST_BEFORE = Table(
    name="relabel_cost_before",
    doc="docs/hipi_rl.md",
    command=RELABEL_COST_COMMAND,
    columns=RELABEL_COST_COLUMNS,
    text=RELABEL_COST_TEXT.format(default=16)
    + " Measured on the code before the relabeling-cost work: both critics, no split "
    "first layer, no next-state entropy term.",
)
RELABEL_COST = Table(
    name="relabel_cost",
    doc="docs/hipi_rl.md",
    command=RELABEL_COST_COMMAND,
    columns=RELABEL_COST_COLUMNS,
    text=RELABEL_COST_TEXT.format(default=8),
)

VS_SB3 = Table(
    name="vs_sb3",
    doc=PERFORMANCE,
    command=tuple("python benchmarks/vs_sb3.py --n-bits 20 30 --seeds 8 --budget 100000".split()),
    columns=(
        Column("n", "n_bits", "d"),
        Column("method", "method"),
        Column("env steps to 0.9 (median)", "steps_to_threshold"),
        Column("seeds solved", "solved", "d"),
        Column("wall s, 1 seed", "seconds_1", ".1f"),
        Column("speed-up, 1 seed", "speedup_1", ".1f"),
        Column("wall s, 8 seeds", "seconds_all", ".1f"),
        Column("speed-up, 8 seeds", "speedup_all", ".1f"),
        Column("compile s", "compile", ".1f"),
    ),
    text=(
        "DQN + HER on bit flipping with n bits, Stable-Baselines3 against `algos/her_dqn.py`. "
        "SB3: `DQN` with `HerReplayBuffer` (`future`, k = 4) on SB3's `BitFlippingEnv` "
        "(`max_steps = n`), SB3's DQN defaults (learning rate 1e-4, batch 32, one update every "
        "4 steps, target network copied every 10k steps, ε from 1 to 0.05 over the first 10 % "
        "of the budget, 64 × 64 units), torch on one thread, the seeds one after another. "
        "Ours: our bit flip, at `her_dqn.py`'s defaults (16 envs, 2 updates of 128 per "
        "iteration, ε over the first 30 % of the budget) and at 8 envs with 4 updates of 256 "
        "per iteration and ε over 10 % (`--num-envs 8 --gradient-steps 4 --batch-size 256 "
        "--exploration-fraction 0.1`), the seeds vmapped in one program. Budget 100k env "
        "steps per seed; every 1,000 env steps the greedy policy plays 100 fresh episodes per "
        "seed (not timed). **env steps to 0.9**: the median over seeds of the first "
        "evaluation with success ≥ 0.9 (a seed that never gets there counts as the budget). "
        "**wall s**: training time until then, our compilation included: for 1 seed, the "
        "median of SB3's seeds and a run of ours with one seed; for 8 seeds, the sum of SB3's "
        "seeds and the time until the last of our 8 vmapped seeds got there. **speed-up**: "
        "SB3's wall seconds / these."
    ),
)

TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        THROUGHPUT,
        vs_brax_sac("pointnav", 50),
        SCALING,
        SCALING_SEEDS,
        SCALING_SPLIT,
        SCALING_DEVICES,
        vs_brax_sac("reacher", 20),
        vs_brax_sac("half_cheetah", 20, repeats=1, note=HALF_CHEETAH_NOTE),
        MJX_ENVS,
        MJX_ENVS_RANDOM_POLICY,
        BUFFER,
        RELABEL_COST_BEFORE,
        RELABEL_COST,
        VS_SB3,
    )
}
__all__ = ["TABLES", "Column", "Table"]
