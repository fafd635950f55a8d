"""The Python loop every training script shares, and the flags that steer it.

A script's `make_train(args)` returns a `Trainer` of pure functions; `run` vmaps
them over seeds, compiles the chunk once, then alternates [train chunk →
evaluate → log → progress → checkpoint]. With `--save-model` the whole training
state (parameters, optimiser, replay buffer, env states, keys, counters) is saved
every `--checkpoint-every` chunks, and `--resume runs/<run_name>` continues from
the last one: evaluation keys depend only on the seed and the chunk, so a resumed
run computes exactly what the uninterrupted run would have.
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

from common import checkpoint, cli, parallel, tracking, video
from common.cli import UsageError
from common.logger import RunLogger, args_dict, run_name

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
class RunArgs:
    """The run-management flags every training script shares (CleanRL's names)."""

    seed: int = 1
    """seed of the first run; runs use seed, seed+1, ..."""
    num_seeds: int = 1
    """independent runs trained side by side in one vmapped program"""
    num_chunks: int = 20
    """how many times training pauses to evaluate, log and report"""
    eval_episodes: int = 100
    """evaluation episodes per seed at each pause (the policy acts deterministically)"""
    save_model: bool = False
    """save the whole training state to runs/<run_name>/checkpoint every
    --checkpoint-every chunks and at the end (what --resume and common.evaluate read)"""
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
    num_devices: int | None = None
    """devices to split the envs, the replay buffer and each batch over (data parallel);
    default: every device of every process"""
    num_processes: int = 1
    """processes (one per host) training one run together through jax.distributed"""
    process_id: int = 0
    """this process's index, 0 .. --num-processes - 1 (process 0 writes the logs)"""
    coordinator_address: str | None = None
    """host:port where process 0 listens, when --num-processes > 1"""


class Trainer(NamedTuple):
    init: Callable  # key -> state, for one seed
    train_chunk: Callable  # state -> (state, metrics), one jitted lax.scan
    evaluate: Callable  # (state, key) -> metrics
    steps_per_chunk: int  # env steps per seed in one chunk
    buffer_bytes: Callable  # state -> bytes of replay held by one seed
    # state -> policy(obs (N, ...), task (N, ...), key) -> actions (N, ...), for one seed
    policy: Callable | None = None
    env: Any = None  # the env the policy acts in


def seed_keys(seed: int, num_seeds: int) -> jax.Array:
    """Typed keys of seeds seed, seed+1, ...: (num_seeds,)."""
    return jax.vmap(jax.random.key)(jnp.arange(seed, seed + num_seeds))


def over_seeds(fn: Callable, num_seeds: int) -> Callable:
    """`fn` of one seed applied to states with a leading seed axis: `jax.vmap` for
    several seeds; for one seed, `fn` itself between a squeeze and an expand of that
    axis (on this CPU a vmap over a single seed made SAC's chunk about 20% slower)."""
    if num_seeds > 1:
        return jax.vmap(fn)

    def one_seed(*inputs):
        out = fn(*jax.tree.map(lambda x: x[0], inputs))
        return jax.tree.map(lambda x: x[None], out)

    return one_seed


def eval_keys(keys: jax.Array, chunk: int) -> jax.Array:
    """Evaluation keys after chunk `chunk`: a function of the seed and the chunk only."""
    return jax.vmap(lambda k: jax.random.fold_in(jax.random.fold_in(k, 1), chunk))(keys)


def _new_run_dir(args: Any, algo: str) -> str:
    name = run_name(args.env_id, algo, args.seed)
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

    def lower_chunk(self, trainer: Trainer, num_seeds: int, state: Any):
        """`trainer.train_chunk` over all seeds, lowered for this layout (the carry donated);
        `.compile()` it."""
        with self.context():
            return self.jit(
                over_seeds(trainer.train_chunk, num_seeds),
                in_shardings=(self.state,),
                out_shardings=(self.state, self.replicated),
                donate_argnums=0,
            ).lower(state)


def check_devices(args: Any, target: Any) -> int:
    """How many devices the run splits over; a UsageError if the flags cannot be met."""
    available = jax.device_count()
    if jax.process_count() != args.num_processes:
        raise UsageError(
            f"--num-processes {args.num_processes} but {jax.process_count()} process(es) "
            "joined; start every process with --coordinator-address and its --process-id"
        )
    num = args.num_devices or available
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


def run(algo: str, args: Any, trainer: Trainer) -> dict[str, np.ndarray]:
    """Train `args.num_seeds` seeds side by side; returns the last metrics (per seed)."""
    n = args.num_seeds

    def init_all():
        return over_seeds(trainer.init, n)(seed_keys(args.seed, n))

    def evaluate_all(state, chunk):
        return over_seeds(trainer.evaluate, n)(state, eval_keys(seed_keys(args.seed, n), chunk))

    target = jax.eval_shape(init_all)  # shapes only: the checks below compile nothing
    lead = jax.process_index() == 0  # the process that writes logs and checkpoints
    run_dir = args.resume or _new_run_dir(args, algo)
    ckpt_path = os.path.join(run_dir, CHECKPOINT_DIR)
    try:
        cli.check_output_dir(
            "--resume" if args.resume else "--run-dir", args.resume or args.run_dir
        )
        num_devices = check_devices(args, target)
        check_memory(args, trainer.buffer_bytes(target), _state_bytes(target))
        if args.resume:
            check_resume(algo, args)  # algorithm and flags; load checks shapes and data
            try:
                state, header = checkpoint.load(ckpt_path, target, algo)
            except checkpoint.CheckpointError as err:
                raise UsageError(f"cannot resume {run_dir}: {err}") from None
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    devices = layout(num_devices, target)
    if args.resume:
        start_chunk = int(header["chunk"])
        print(f"resuming {run_dir} after chunk {start_chunk} ({header['env_steps']} env steps)")
        if start_chunk >= args.num_chunks:
            print(f"{run_dir} had already finished all {args.num_chunks} chunks")
            return {}
        if devices.mesh is not None:
            state = parallel.place(state, devices.state)
    else:
        state = devices.jit(init_all, out_shardings=devices.state)()
        start_chunk = 0
    if lead:
        where = f" over {num_devices} devices" if num_devices > 1 else ""
        mib = trainer.buffer_bytes(state) / 2**20
        print(f"replay buffer: {mib:.1f} MiB for {n} seed(s){where}")

    start = time.time()
    train_chunk = devices.lower_chunk(trainer, n, state)
    with devices.context():
        evaluate = devices.jit(
            evaluate_all,
            in_shardings=(devices.state, devices.replicated),
            out_shardings=devices.replicated,
        ).lower(state, np.int32(0))
    train_chunk, evaluate = train_chunk.compile(), evaluate.compile()
    if lead:
        print(f"compiled in {time.time() - start:.1f} s")
    return _train(algo, args, trainer, state, start_chunk, train_chunk, evaluate, run_dir, lead)


def _train(algo, args, trainer, state, start_chunk, train_chunk, evaluate, run_dir, lead):
    """The loop: [train chunk -> evaluate -> log -> progress -> checkpoint]."""
    keys = seed_keys(args.seed, args.num_seeds)
    ckpt_path = os.path.join(run_dir, CHECKPOINT_DIR)
    total_steps = trainer.steps_per_chunk * args.num_chunks
    env_steps = start_chunk * trainer.steps_per_chunk
    metrics: dict[str, Any] = {}
    hparams = {"algo": algo, **args_dict(args)}
    null = contextlib.nullcontext
    with (
        tracking.start(args, run_dir, hparams) if lead else null() as tracker,
        RunLogger(
            run_dir,
            hparams,
            total_steps=total_steps,
            num_seeds=args.num_seeds,
            quiet=args.quiet,
            initial_step=env_steps,
        )
        if lead
        else null() as logger,
    ):
        start = time.time()
        saved_chunk = start_chunk if args.resume else None
        try:
            for chunk in range(start_chunk + 1, args.num_chunks + 1):
                state, metrics = train_chunk(state)
                metrics.update(evaluate(state, np.int32(chunk)))
                metrics = parallel.to_host(metrics)
                env_steps = chunk * trainer.steps_per_chunk
                elapsed = time.time() - start
                metrics["charts/SPS"] = (chunk - start_chunk) * trainer.steps_per_chunk / elapsed
                if lead:
                    logger.log(env_steps, metrics)
                    tracker.log(env_steps, metrics)
                    logger.progress(env_steps, **_progress_fields(metrics))
                if args.save_model and (
                    chunk % args.checkpoint_every == 0 or chunk == args.num_chunks
                ):  # every process: a multi-process save gathers the split arrays
                    meta = {"algo": algo, "args": args_dict(args), "env_steps": env_steps}
                    checkpoint.save(ckpt_path, state, {**meta, "chunk": chunk})
                    saved_chunk = chunk
        except KeyboardInterrupt:
            if lead:
                logger.summary(_interrupted(algo, run_dir, env_steps, saved_chunk, trainer))
            raise SystemExit(130) from None
        if not lead:
            return metrics

        videos = ""
        if args.capture_video:
            videos = ", video in " + _capture_video(trainer, state, keys, run_dir, env_steps)
        logger.summary(
            f"{algo} {args.env_id}: {_final_line(metrics)} after {env_steps} env steps per "
            f"seed, {time.time() - start:.0f} s, peak host memory {peak_memory_gib():.2f} GiB; "
            f"logs in {run_dir}"
            + (f", checkpoint in {ckpt_path}" if args.save_model else "")
            + videos
        )
    return metrics


def _progress_fields(metrics: dict[str, Any]) -> dict[str, Any]:
    fields = {"success": metrics["eval/success_rate"]}
    if "eval/episode_return" in metrics:
        fields["return"] = metrics["eval/episode_return"]
    return fields


def _final_line(metrics: dict[str, Any]) -> str:
    success = np.asarray(metrics["eval/success_rate"])
    ret = np.asarray(metrics.get("eval/episode_return", np.nan))
    per_seed = [round(float(x), 3) for x in np.atleast_1d(success)]
    return f"eval success {success.mean():.3f} (per seed {per_seed}), return {ret.mean():.3g}"


def _interrupted(algo: str, run_dir: str, env_steps: int, saved: int | None, trainer) -> str:
    if saved is None:
        return f"interrupted at {env_steps} env steps; no checkpoint was saved (--save-model)"
    return (
        f"interrupted at {env_steps} env steps; the checkpoint after "
        f"{saved * trainer.steps_per_chunk} steps continues with: "
        f"python algos/{algo}.py --resume {run_dir}"
    )


def _capture_video(trainer: Trainer, state: Any, keys: jax.Array, run_dir: str, step: int) -> str:
    if trainer.policy is None:
        return "none (this script gives no policy to record)"
    first = jax.tree.map(lambda x: x[0], state)
    key = jax.random.fold_in(keys[0], 2)
    path = os.path.join(run_dir, "videos", f"eval_{step}.gif")
    try:
        video.save_episode(trainer.env, trainer.policy(first), key, path)
    except video.VideoError as err:
        return f"none ({err})"
    return path


def load_trained(run_dir: str, **changes: Any) -> tuple[Any, Any, Trainer, Any, dict[str, Any]]:
    """A saved run, ready to act: `(algo module, args, trainer, state, metadata)`.

    `state` holds every seed (leading axis num_seeds); `changes` replace Args fields
    that do not alter the state's shapes (e.g. `eval_episodes`). Raises UsageError
    with one sentence for a missing, foreign or corrupt checkpoint.
    """
    from common.scripts import load_algo

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
    target = jax.eval_shape(jax.vmap(trainer.init), seed_keys(args.seed, args.num_seeds))
    try:
        state, header = checkpoint.load(path, target, algo)
    except checkpoint.CheckpointError as err:
        raise UsageError(str(err)) from None
    return module, args, trainer, state, header
