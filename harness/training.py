"""The chores of a training run, as plain calls a script's `main` makes.

Each script writes its own loop (see `main` in any of algos/*.py):

    train = make_train(args)                       # pure: init, train_chunk, evaluate
    with training.start("hipi_rl", args, train.init, ...) as run:   # dirs, devices, resume
        train_chunk = run.compile(train.train_chunk)
        evaluate = run.compile_evaluate(train.evaluate)
        state, metrics = run.state, {}
        for chunk in run.chunks():
            state, metrics = train_chunk(state)
            metrics |= evaluate(state, run.eval_keys(chunk))
            metrics = run.log(chunk, metrics)
            run.checkpoint(chunk, state)
        return run.finish(metrics, video=...)

Nothing here calls back into a script. With `--save-model` the whole training state
(parameters, optimiser, replay buffer, env states, keys, counters) is saved every
`--checkpoint-every` chunks, and `--resume runs/<run_name>` continues from the last
one: evaluation keys depend only on the seed and the chunk, so a resumed run computes
exactly what the uninterrupted run would have.
"""

from __future__ import annotations

import contextlib
import os
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from common import parallel
from harness import checkpoint, cli, tracking
from harness import video as harness_video
from harness.cli import UsageError
from harness.logger import RunLogger, args_dict, run_name

CHECKPOINT_DIR = "checkpoint"

# Args fields that steer where and how a run reports, not what it computes: a resumed
# run may change them; every other field must equal the checkpoint's.
RESUMABLE_CHANGES = frozenset(
    {
        "resume",
        "quiet",
        "track",
        "wandb_project",
        "capture_video",
        "save_model",
        "checkpoint_every",
        "run_dir",
        # the program is the same on any number of devices and processes
        "num_devices",
        "num_processes",
        "process_id",
        "coordinator_address",
    }
)


@dataclass(frozen=True)
class RunFlags:
    """The run-management flags of every script, online or offline (CleanRL's names)."""

    seed: int = 1
    """seed of the first run; runs use seed, seed+1, ..."""
    num_seeds: int = 1
    """independent runs trained side by side in one vmapped program"""
    eval_episodes: int = 100
    """evaluation episodes per seed at each pause (the policy acts deterministically)"""
    save_model: bool = False
    """save the whole training state to runs/<run_name>/checkpoint every
    --checkpoint-every chunks and at the end (what --resume and harness.evaluate_saved read)"""
    checkpoint_every: int = 5
    """chunks between checkpoints when --save-model is set"""
    resume: str | None = None
    """continue the run in this directory (runs/<run_name>) from its last checkpoint;
    its args.json gives every flag not given on the command line"""
    track: bool = False
    """also log to Weights & Biases (offline unless credentials are set up)"""
    wandb_project: str = "hindsight-jax"
    """Weights & Biases project name, with --track"""
    capture_video: bool = False
    """draw one evaluation episode of the first seed at the end to runs/<run_name>/videos/"""
    run_dir: str = "runs"
    """parent directory of the run's logs"""
    quiet: bool = False
    """no progress bar"""


@dataclass(frozen=True)
class RunArgs(RunFlags):
    """RunFlags, and the flags of the online scripts' chunks, devices and processes."""

    num_chunks: int = 20
    """how many times training pauses to evaluate, log and report"""
    num_devices: int | None = None
    """devices to split the envs, the replay buffer and each batch over (data parallel);
    default: every device of every process"""
    num_processes: int = 1
    """processes (one per host) training one run together through jax.distributed"""
    process_id: int = 0
    """this process's index, 0 .. --num-processes - 1 (process 0 writes the logs)"""
    coordinator_address: str | None = None
    """host:port where process 0 listens, when --num-processes > 1"""


class Train(NamedTuple):
    """What a script's `make_train(args)` returns: its pure functions, for ONE seed. The
    script's own `main` compiles and calls them; tools that load a saved run
    (`load_trained`: evaluation, demonstrations, benchmarks) read them too."""

    init: Callable  # key -> state
    train_chunk: Callable  # state -> (state, metrics), one jitted lax.scan
    evaluate: Callable  # (state, key) -> metrics
    steps_per_chunk: int  # env steps per seed in one chunk
    buffer_bytes: Callable  # state -> bytes of replay held by one seed
    # state -> policy(obs (N, ...), task (N, ...), key) -> actions (N, ...), for one seed
    policy: Callable | None = None
    env: Any = None  # the env the policy acts in
    shared: tuple = ()  # arguments after the state (or key) that every seed shares
    # state -> the state whose policy the run reports, when not the last one (hipi_bc:
    # its best-validation parameters); tools that evaluate a saved run use it
    reported: Callable | None = None


def seed_keys(seed: int, num_seeds: int) -> jax.Array:
    """Typed keys of seeds seed, seed+1, ...: (num_seeds,)."""
    return jax.vmap(jax.random.key)(jnp.arange(seed, seed + num_seeds))


def over_seeds(fn: Callable, num_seeds: int, num_shared: int = 0) -> Callable:
    """`fn` of one seed applied to inputs with a leading seed axis: `jax.vmap` for
    several seeds; for one seed, `fn` itself between a squeeze and an expand of that
    axis (on this CPU a vmap over a single seed made SAC's chunk about 20% slower).
    With `num_shared`, `fn(state, *shared)`: the `num_shared` inputs after the state are
    the same for every seed and carry no seed axis."""
    if num_seeds > 1:
        return jax.vmap(fn, in_axes=(0, *[None] * num_shared)) if num_shared else jax.vmap(fn)

    def one_seed(*inputs):
        split = len(inputs) - num_shared
        seeded = jax.tree.map(lambda x: x[0], inputs[:split])
        out = fn(*seeded, *inputs[split:])
        return jax.tree.map(lambda x: x[None], out)

    return one_seed


def eval_keys(keys: jax.Array, chunk: int) -> jax.Array:
    """Evaluation keys after chunk `chunk`: a function of the seed and the chunk only."""
    return jax.vmap(lambda k: jax.random.fold_in(jax.random.fold_in(k, 1), chunk))(keys)


def _new_run_dir(args: Any, env_id: str, algo: str) -> str:
    name = run_name(env_id, algo, args.seed)
    run_dir = os.path.join(args.run_dir, name)
    for suffix in range(1, 1000):  # two runs started in the same second never share a directory
        if not os.path.exists(run_dir):
            break
        run_dir = os.path.join(args.run_dir, f"{name}-{suffix}")
    return run_dir


def check_resume(algo: str, args: Any) -> dict[str, Any]:
    """The checkpoint header of `args.resume`, refused with a UsageError if it was written
    by another algorithm or with Args that change what the run computes."""
    path = os.path.join(args.resume, CHECKPOINT_DIR)
    try:
        header = checkpoint.read_metadata(path)
    except checkpoint.CheckpointError as err:
        raise UsageError(f"cannot resume {args.resume}: {err}") from None
    if header.get("algo") != algo:
        raise UsageError(
            f"cannot resume {args.resume}: it was trained by {header.get('algo')}, not {algo}"
        )
    if not all(isinstance(header.get(k), int) for k in ("chunk", "env_steps")):
        raise UsageError(
            f"cannot resume {args.resume}: its checkpoint header does not say after which "
            "chunk it was saved"
        )
    saved, now = header.get("args") or {}, args_dict(args)
    differing = [k for k in now if k not in RESUMABLE_CHANGES and saved.get(k) != now[k]]
    if differing:
        changes = ", ".join(f"{k}={saved.get(k, '<missing>')!r} -> {now[k]!r}" for k in differing)
        raise UsageError(
            f"cannot resume {args.resume}: these flags differ from the checkpoint's ({changes})"
        )
    return header


def available_memory() -> int | None:
    """Bytes of memory this machine can still give (MemAvailable), if it says."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def peak_memory_gib() -> float:
    """The most resident memory this process has held so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _state_bytes(state: Any) -> int:
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state))


def check_memory(args: Any, buffer_bytes: int, state_bytes: int) -> None:
    """Refuse a run whose training state (mostly replay) cannot fit in host memory."""
    free = available_memory()
    if free is not None and state_bytes > 0.9 * free:
        raise UsageError(
            f"the training state needs {state_bytes / 2**30:.1f} GiB "
            f"({buffer_bytes / 2**30:.1f} GiB of replay for {args.num_seeds} seed(s)), more "
            f"than the {free / 2**30:.1f} GiB of memory available; lower --buffer-size "
            "or --num-seeds"
        )


class Layout(NamedTuple):
    """Where a run's state lives: one device (mesh None), or a mesh that splits its envs."""

    mesh: Any  # jax.sharding.Mesh or None
    state: Any  # the state's shardings, or None
    replicated: Any  # the sharding of everything else, or None

    def context(self):
        """The mesh while tracing, so the program can place its batches."""
        return contextlib.nullcontext() if self.mesh is None else jax.set_mesh(self.mesh)

    def jit(self, fn: Callable, in_shardings: Any = None, out_shardings: Any = None, **kwargs):
        if self.mesh is None:
            return jax.jit(fn, **kwargs)
        return jax.jit(fn, in_shardings=in_shardings, out_shardings=out_shardings, **kwargs)

    def lower_chunk(self, train_chunk: Callable, num_seeds: int, state: Any):
        """`train_chunk` of one seed over all seeds, lowered for this layout (the carry
        donated), as `Run.compile` lowers it; `.compile()` it."""
        with self.context():
            return self.jit(
                over_seeds(train_chunk, num_seeds),
                in_shardings=(self.state,),
                out_shardings=(self.state, self.replicated),
                donate_argnums=0,
            ).lower(state)


def check_devices(args: Any, target: Any) -> int:
    """How many devices the run splits over; a UsageError if the flags cannot be met."""
    available = jax.device_count()
    num_processes = getattr(args, "num_processes", 1)  # offline scripts run in one
    if jax.process_count() != num_processes:
        raise UsageError(
            f"--num-processes {num_processes} but {jax.process_count()} process(es) "
            "joined; start every process with --coordinator-address and its --process-id"
        )
    num = getattr(args, "num_devices", 1) or available
    if not 1 <= num <= available:
        raise UsageError(f"--num-devices {num}, but this run sees {available} device(s)")
    if jax.process_count() > 1:
        if num != available:
            raise UsageError(
                f"--num-devices {num}: a run over {jax.process_count()} processes uses all "
                f"{available} devices"
            )
        if args.capture_video:
            raise UsageError("--capture-video is not supported in multi-process runs yet")
    if num > 1:
        if not parallel.has_env_axis(target):
            raise UsageError(f"--num-devices {num}: this script's state has no envs to split")
        if args.num_envs % num:
            raise UsageError(f"--num-envs {args.num_envs} does not split evenly over {num} devices")
        if args.eval_episodes % num:
            raise UsageError(
                f"--eval-episodes {args.eval_episodes} does not split evenly over {num} devices"
            )
    return num


def layout(num_devices: int, target: Any) -> Layout:
    """The Layout of a state shaped like `target` (with a seed axis) on `num_devices`."""
    if num_devices == 1:
        return Layout(mesh=None, state=None, replicated=None)
    mesh = parallel.make_mesh(num_devices)
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    return Layout(mesh, parallel.state_shardings(target, mesh, seed_axis=True), replicated)


class Run:
    """One training run's chores, called by a script's `main` in plain sight.

    `start` checks the flags against the machine (run directory, devices, memory, the
    checkpoint to resume), makes the initial state of every seed (or loads it), and
    opens the logs. The script then compiles its pure functions with `compile` and
    `compile_evaluate`, and writes its own loop over `chunks()`, calling `log` and
    `checkpoint`; `finish` prints the summary and draws the video. Use it as
    `with training.start(...) as run:` so the logs close and Ctrl-C says how to resume.
    """

    def __init__(
        self, algo, args, init, *, shared, env_id, steps_per_chunk, num_chunks, buffer_bytes, unit
    ):
        self.algo, self.args, self.env_id, self.unit = algo, args, env_id, unit
        self.steps_per_chunk, self.num_chunks = steps_per_chunk, num_chunks
        self.keys = seed_keys(args.seed, args.num_seeds)
        n = args.num_seeds
        shared = tuple(shared)

        def init_all(*shared):
            return over_seeds(lambda key: init(key, *shared), n)(self.keys)

        target = jax.eval_shape(init_all, *shared)  # shapes only: the checks compile nothing
        self.lead = jax.process_index() == 0  # the process that writes logs and checkpoints
        self.run_dir = args.resume or _new_run_dir(args, env_id, algo)
        self.checkpoint_path = os.path.join(self.run_dir, CHECKPOINT_DIR)
        try:
            cli.check_output_dir(
                "--resume" if args.resume else "--run-dir", args.resume or args.run_dir
            )
            num_devices = check_devices(args, target)
            if buffer_bytes is not None:
                check_memory(args, buffer_bytes(target), _state_bytes(target))
            if args.resume:
                check_resume(algo, args)  # algorithm and flags; load checks shapes and data
                try:
                    state, header = checkpoint.load(self.checkpoint_path, target, algo)
                except checkpoint.CheckpointError as err:
                    raise UsageError(f"cannot resume {self.run_dir}: {err}") from None
        except UsageError as err:
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(2) from None
        self.devices = layout(num_devices, target)
        self.first_chunk = 0
        if args.resume:
            self.first_chunk = int(header["chunk"])
            print(
                f"resuming {self.run_dir} after chunk {self.first_chunk} "
                f"({header['env_steps']} {unit})"
            )
            if self.devices.mesh is not None:
                state = parallel.place(state, self.devices.state)
        else:
            state = self.devices.jit(init_all, out_shardings=self.devices.state)(*shared)
        self.state = state
        self.finished = self.first_chunk >= num_chunks
        if self.finished:
            print(f"{self.run_dir} had already finished all {num_chunks} chunks")
        elif self.lead and buffer_bytes is not None:
            where = f" over {num_devices} devices" if num_devices > 1 else ""
            mib = buffer_bytes(state) / 2**20
            print(f"replay buffer: {mib:.1f} MiB for {n} seed(s){where}")
        self.env_steps = self.first_chunk * steps_per_chunk
        self.saved_chunk = self.first_chunk if args.resume else None
        self.hparams = {"algo": algo, **args_dict(args)}
        self.logger = self.tracker = None
        self.start_time = None

    # ------------------------------------------------------------ compile
    def compile(self, step: Callable, *shared: Any) -> Callable:
        """`step(state, *shared) -> (state, metrics)` of one seed, as one compiled program
        for every seed (vmapped), split over the run's devices, the state donated.
        Returns `fn(state, *shared)`; the `shared` arguments are the same for every seed."""
        n, devices = self.args.num_seeds, self.devices
        fn = over_seeds(step, n, len(shared))
        with devices.context():
            lowered = devices.jit(
                fn,
                in_shardings=(devices.state, *[devices.replicated] * len(shared)),
                out_shardings=(devices.state, devices.replicated),
                donate_argnums=0,
            ).lower(self.state, *shared)
        return self._compiled(lowered, getattr(step, "__name__", "the step"))

    def compile_evaluate(self, evaluate: Callable) -> Callable:
        """`evaluate(state, key) -> metrics` of one seed, compiled for every seed; call
        the result with `run.eval_keys(chunk)`."""
        devices = self.devices
        with devices.context():
            lowered = devices.jit(
                over_seeds(evaluate, self.args.num_seeds),
                in_shardings=(devices.state, devices.replicated),
                out_shardings=devices.replicated,
            ).lower(self.state, self.eval_keys(0))
        return self._compiled(lowered, "the evaluation")

    def _compiled(self, lowered, what: str):
        start = time.time()
        compiled = lowered.compile()
        if self.lead:
            print(f"compiled {what} in {time.time() - start:.1f} s")
        return compiled

    def eval_keys(self, chunk: int) -> jax.Array:
        """Evaluation keys after chunk `chunk`: a function of the seed and the chunk only,
        so a resumed run evaluates exactly as the uninterrupted one."""
        return eval_keys(self.keys, chunk)

    # ------------------------------------------------------------ the loop's chores
    def chunks(self):
        """The chunks still to train: first_chunk + 1 .. num_chunks."""
        self.start_time = time.time()
        return range(self.first_chunk + 1, self.num_chunks + 1)

    def log(self, chunk: int, metrics: dict[str, Any]) -> dict[str, np.ndarray]:
        """Bring `metrics` to the host, add charts/SPS, write them to the CSV, TensorBoard
        and W&B and move the progress bar (process 0 only). Returns the host metrics."""
        metrics = parallel.to_host(metrics)
        self.env_steps = chunk * self.steps_per_chunk
        elapsed = time.time() - self.start_time
        metrics["charts/SPS"] = (chunk - self.first_chunk) * self.steps_per_chunk / elapsed
        if self.lead:
            self.logger.log(self.env_steps, metrics)
            self.tracker.log(self.env_steps, metrics)
            self.logger.progress(self.env_steps, **_progress_fields(metrics))
        return metrics

    def checkpoint(self, chunk: int, state: Any, last: bool = False) -> None:
        """With --save-model, save the whole state every --checkpoint-every chunks and after
        the last one (`last`: the loop ends here), on every process: a multi-process save
        gathers the split arrays."""
        args = self.args
        if not args.save_model:
            return
        if chunk % args.checkpoint_every and chunk != self.num_chunks and not last:
            return
        meta = {"algo": self.algo, "args": args_dict(args), "env_steps": self.env_steps}
        checkpoint.save(self.checkpoint_path, state, {**meta, "chunk": chunk})
        self.saved_chunk = chunk

    def finish(
        self, metrics: dict[str, Any], *, summary: str | None = None, video: tuple | None = None
    ) -> dict[str, Any]:
        """Print the run's summary line (`summary`, or the final evaluation) and, with
        --capture-video, draw one evaluation episode of the first seed; `video` is
        `(env, make_policy, state)`, `make_policy(state of one seed)` giving
        `policy(obs, task, key) -> action`. Returns `metrics`."""
        if not self.lead or self.finished:
            return metrics
        args = self.args
        videos = ""
        if args.capture_video:
            videos = ", video in " + _capture_video(video, self.keys, self.run_dir, self.env_steps)
        text = summary or f"{_final_line(metrics)} after {self.env_steps} env steps per seed"
        self.logger.summary(
            f"{self.algo} {self.env_id}: {text}, {time.time() - self.start_time:.0f} s, "
            f"peak host memory {peak_memory_gib():.2f} GiB; logs in {self.run_dir}"
            + (f", checkpoint in {self.checkpoint_path}" if args.save_model else "")
            + videos
        )
        return metrics

    # ------------------------------------------------------------ logs open and close
    def __enter__(self) -> Run:
        if self.lead:
            total = self.steps_per_chunk * self.num_chunks
            self.tracker = tracking.start(self.args, self.run_dir, self.hparams).__enter__()
            self.logger = RunLogger(
                self.run_dir,
                self.hparams,
                total_steps=total,
                num_seeds=self.args.num_seeds,
                quiet=self.args.quiet,
                initial_step=self.env_steps,
            ).__enter__()
        return self

    def __exit__(self, kind, error, traceback) -> bool:
        interrupted = kind is KeyboardInterrupt
        if self.logger is not None:
            if interrupted:
                self.logger.summary(self._interrupted())
            self.logger.__exit__(kind, error, traceback)
            self.tracker.__exit__(kind, error, traceback)
        if interrupted:
            raise SystemExit(130) from None
        return False

    def _interrupted(self) -> str:
        if self.saved_chunk is None:
            return (
                f"interrupted at {self.env_steps} {self.unit}; no checkpoint was saved "
                "(--save-model)"
            )
        return (
            f"interrupted at {self.env_steps} {self.unit}; the checkpoint after "
            f"{self.saved_chunk * self.steps_per_chunk} {self.unit} continues with: "
            f"python algos/{self.algo}.py --resume {self.run_dir}"
        )


def start(
    algo: str,
    args: Any,
    init: Callable,
    *,
    shared: tuple = (),
    env_id: str | None = None,
    steps_per_chunk: int,
    num_chunks: int | None = None,
    buffer_bytes: Callable | None = None,
    unit: str = "env steps",
) -> Run:
    """Start a run of `algo` (see `Run`): `init(key, *shared) -> state` of one seed;
    `buffer_bytes(state) -> bytes` of replay, for the memory check; `env_id` names the
    run directory (default `args.env_id`); `num_chunks` defaults to `args.num_chunks`;
    `unit` names what `steps_per_chunk` counts (hipi_bc: epochs).
    Bad flags end the process with one line and exit 2 before anything is compiled."""
    env_id = env_id if env_id is not None else args.env_id
    num_chunks = num_chunks if num_chunks is not None else args.num_chunks
    return Run(
        algo,
        args,
        init,
        shared=shared,
        env_id=env_id,
        steps_per_chunk=steps_per_chunk,
        num_chunks=num_chunks,
        buffer_bytes=buffer_bytes,
        unit=unit,
    )


def _progress_fields(metrics: dict[str, Any]) -> dict[str, Any]:
    names = {
        "success": "eval/success_rate",
        "return": "eval/episode_return",
        "val_loss": "losses/val_loss",
    }
    return {short: metrics[name] for short, name in names.items() if name in metrics}


def _final_line(metrics: dict[str, Any]) -> str:
    success = np.asarray(metrics["eval/success_rate"])
    ret = np.asarray(metrics.get("eval/episode_return", np.nan))
    per_seed = [round(float(x), 3) for x in np.atleast_1d(success)]
    return f"eval success {success.mean():.3f} (per seed {per_seed}), return {ret.mean():.3g}"


def _capture_video(video: tuple | None, keys: jax.Array, run_dir: str, step: int) -> str:
    if video is None:
        return "none (this script gives no policy to record)"
    env, make_policy, state = video
    policy = make_policy(jax.tree.map(lambda x: x[0], state))  # the first seed's
    key = jax.random.fold_in(keys[0], 2)
    path = os.path.join(run_dir, "videos", f"eval_{step}.gif")
    try:
        harness_video.save_episode(env, policy, key, path)
    except harness_video.VideoError as err:
        return f"none ({err})"
    return path


def load_trained(run_dir: str, **changes: Any) -> tuple[Any, Any, Train, Any, dict[str, Any]]:
    """A saved run, ready to act: `(algo module, args, trainer, state, metadata)`.

    `state` holds every seed (leading axis num_seeds); `changes` replace Args fields
    that do not alter the state's shapes (e.g. `eval_episodes`). Raises UsageError
    with one sentence for a missing, foreign or corrupt checkpoint.
    """
    from harness.algos_loader import load_algo

    path = os.path.join(run_dir, CHECKPOINT_DIR)
    try:
        header = checkpoint.read_metadata(path)
    except checkpoint.CheckpointError as err:
        raise UsageError(str(err)) from None
    algo = header.get("algo")
    try:
        module = load_algo(str(algo))
    except ValueError:
        raise UsageError(f"checkpoint at {path} names an unknown algorithm {algo!r}") from None
    saved = dict(header.get("args") or {})
    saved.pop("resume", None)
    values = cli.saved_flags(module.Args, saved, f"checkpoint at {path}")
    args = module.Args(**{**values, **changes, "quiet": True, "track": False})
    trainer = module.make_train(args)
    target = jax.eval_shape(
        jax.vmap(lambda key: trainer.init(key, *trainer.shared)),
        seed_keys(args.seed, args.num_seeds),
    )
    try:
        state, header = checkpoint.load(path, target, algo)
    except checkpoint.CheckpointError as err:
        raise UsageError(str(err)) from None
    return module, args, trainer, state, header
