"""Replay buffer speed: common/buffer.py against flashbax's trajectory buffer.

The job our algorithms give a replay buffer: N envs each add one transition per
step to a ring of 1e6 transitions, and every update samples a batch of 256
transitions plus, for each, a HER 'future' goal: the achieved features of this
or a later step of the same episode. Episodes end at different times in
different envs (lengths drawn uniformly in [1, episode_length]).

Measured, in one process, on a full (wrapped) buffer:

- ours: `insert`; `sample_index` + `gather` + a future goal (`episode_bounds`,
  `shift`, as algos/her.py takes it) + the goal's features.
- flashbax window: `make_trajectory_buffer(add_batch_size=N,
  sample_sequence_length=episode_length, period=1)`; add a (N, 1) batch; sample
  windows of `episode_length` steps, take step 0 as the transition and a uniform
  step of the window as the goal. Cheapest, but the goal leaves the episode
  whenever the window crosses an episode end. The fraction of such goals is
  printed for every buffer: the synthetic stream stores the episode id in the
  `reward` field, so it is checked against data, not against bookkeeping.
- flashbax window+done: the same, with the goal restricted to the window up to
  the first `terminated | truncated` flag: the extra bookkeeping that makes the
  future goal stay in its episode.

Each operation is timed per jitted call (median over `--repeats`, including
dispatch) and inside a `lax.scan` of `--scan-length` calls (what a training
chunk sees, per operation). Inserts donate the buffer. Compile time is reported
separately. Calls of the different buffers are interleaved, so a noisy machine
slows them alike.

Prints a table; with `--rows-out FILE` it also appends one JSON row per (buffer, N) to
FILE (`python experiments/sweep.py buffer` records them, `python experiments/report.py
buffer` writes docs/buffer.md's table).

    python benchmarks/buffer.py
    python benchmarks/buffer.py --no-flashbax --num-envs 64 --repeats 50

flashbax is not a dependency; to compare, install it into a directory of its own
(its dependencies come with the project's: chex, flax, tensorstore) and put that
directory on the path of the benchmark (or of the sweep):

    pip install --no-deps --target /tmp/flashbax flashbax==0.1.3
    PYTHONPATH=/tmp/flashbax python benchmarks/buffer.py
"""

from __future__ import annotations

import importlib.metadata
import os
import statistics
import sys
import time
import warnings
from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import struct

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common import buffer as rb  # noqa: E402
from harness import cli  # noqa: E402
from harness.records import append_row  # noqa: E402

try:
    import flashbax as fbx
except ImportError:  # the comparison is optional
    fbx = None
else:
    warnings.filterwarnings("ignore", message="Setting max_size", module="flashbax")


@dataclass(frozen=True)
class Args:
    num_envs: tuple[int, ...] = (64, 1024)
    """numbers of parallel envs to measure (one transition per env per insert)"""
    capacity: int = 1_000_000
    """buffer capacity in transitions"""
    batch_size: int = 256
    """transitions (and goals) per sample"""
    episode_length: int = 50
    """maximum episode length; also flashbax's sample window"""
    obs_dim: int = 10
    """observation size"""
    goal_dim: int = 10
    """commanded goal size"""
    feature_dim: int = 10
    """stored per-step features (the achieved goal is read from them)"""
    action_dim: int = 1
    """action size"""
    repeats: int = 200
    """timed calls per measurement; the median is reported"""
    scan_length: int = 100
    """operations per call in the in-scan measurement"""
    seed: int = 0
    """seed of the synthetic episode stream and of the sampling keys"""
    flashbax: bool = True
    """compare with flashbax's trajectory buffer, which must be installed (--no-flashbax:
    common/buffer.py only)"""
    rows_out: str | None = None
    """append one JSON row per (buffer, N) to this file"""

    def __post_init__(self):
        for n in self.num_envs:
            if n < 1 or self.capacity // n < self.episode_length:
                raise ValueError(
                    f"--capacity {self.capacity} must hold at least one episode "
                    f"({self.episode_length} steps) for each of {n} envs"
                )
        if min(self.repeats, self.scan_length, self.batch_size, self.episode_length) < 1:
            raise ValueError(
                "--repeats, --scan-length, --batch-size and --episode-length must be >= 1"
            )
        if self.flashbax and fbx is None:
            raise cli.UsageError(
                "flashbax is not installed: install it into a separate venv (see "
                "benchmarks/buffer.py) or pass --no-flashbax"
            )


@struct.dataclass
class Transition:
    obs: jax.Array  # (obs_dim,)
    task: jax.Array  # (goal_dim,) the commanded goal
    action: jax.Array  # (action_dim,)
    next_obs: jax.Array  # (obs_dim,)
    features: jax.Array  # (feature_dim,) of the state reached; the achieved goal
    reward: jax.Array  # () here: the episode id as a float, to check goals stay in it
    terminated: jax.Array  # () bool
    truncated: jax.Array  # () bool


def example_transition(args: Args) -> Transition:
    z = lambda d: jnp.zeros((d,), jnp.float32)  # noqa: E731
    return Transition(
        obs=z(args.obs_dim),
        task=z(args.goal_dim),
        action=z(args.action_dim),
        next_obs=z(args.obs_dim),
        features=z(args.feature_dim),
        reward=jnp.zeros(()),
        terminated=jnp.zeros((), bool),
        truncated=jnp.zeros((), bool),
    )


# ------------------------------------------------------------ synthetic stream
@struct.dataclass
class Stream:
    """Per env: the step within the current episode, the episode's length and id."""

    t: jax.Array  # (N,) int32
    length: jax.Array  # (N,) int32
    episode: jax.Array  # (N,) int32 unique episode id
    key: jax.Array


def stream_init(key: jax.Array, num_envs: int, episode_length: int) -> Stream:
    k_len, key = jax.random.split(key)
    length = jax.random.randint(k_len, (num_envs,), 1, episode_length + 1)
    return Stream(
        t=jnp.zeros((num_envs,), jnp.int32),
        length=length,
        episode=jnp.arange(num_envs, dtype=jnp.int32),
        key=key,
    )


def stream_step(s: Stream, args: Args) -> tuple[Stream, Transition, jax.Array]:
    """One step of every env: (next stream, transition (N, ...), step in episode (N,))."""
    key, k_len, k_obs, k_term = jax.random.split(s.key, 4)
    n = s.t.shape[0]
    done = s.t + 1 >= s.length
    terminated = done & jax.random.bernoulli(k_term, 0.5, (n,))
    base = jax.random.normal(k_obs, (n, 1))
    val = lambda d: base + jnp.arange(d, dtype=jnp.float32)  # noqa: E731
    tr = Transition(
        obs=val(args.obs_dim),
        task=val(args.goal_dim),
        action=val(args.action_dim),
        next_obs=val(args.obs_dim),
        features=val(args.feature_dim),
        reward=s.episode.astype(jnp.float32),  # exact below 2**24
        terminated=terminated,
        truncated=done & ~terminated,
    )
    new_len = jax.random.randint(k_len, (n,), 1, args.episode_length + 1)
    nxt = Stream(
        t=jnp.where(done, 0, s.t + 1),
        length=jnp.where(done, new_len, s.length),
        episode=jnp.where(done, s.episode + n, s.episode),
        key=key,
    )
    return nxt, tr, s.t


# ------------------------------------------------------------ the two buffers
def future_goal(state, key, idx):
    """HER's future goal on our buffer, as algos/her.py chooses it."""
    back, ahead = rb.episode_bounds(state, idx)
    u = jax.random.uniform(key, idx.row.shape)
    offset = jnp.clip(jnp.floor(u * (ahead + 1)).astype(jnp.int32), -back, ahead)
    return rb.shift(state, idx, offset)


def make_ours(args: Args, n: int):
    def init():
        return rb.init(example_transition(args), n, args.capacity, args.episode_length)

    def insert(state, tr, step):
        return rb.insert(state, tr, step)

    def sample(state, key):
        k_idx, k_goal = jax.random.split(key)
        idx = rb.sample_index(state, k_idx, args.batch_size)
        batch = rb.gather(state, idx)
        goal_at = future_goal(state, k_goal, idx)
        return batch, state.data.features[goal_at.row, goal_at.env]

    def leaves_episode(state, key):
        """Fraction of goals from another episode than their transition."""
        k_idx, k_goal = jax.random.split(key)
        idx = rb.sample_index(state, k_idx, args.batch_size)
        goal_at = future_goal(state, k_goal, idx)
        episode = state.data.reward
        return jnp.mean(episode[goal_at.row, goal_at.env] != episode[idx.row, idx.env])

    return init, insert, sample, leaves_episode


def make_flashbax(args: Args, n: int, respect_episodes: bool):
    length = args.episode_length
    buf = fbx.make_trajectory_buffer(
        add_batch_size=n,
        sample_batch_size=args.batch_size,
        sample_sequence_length=length,
        period=1,
        min_length_time_axis=length,
        max_size=args.capacity,
    )

    def init():
        return buf.init(example_transition(args))

    def insert(state, tr, step):
        del step  # flashbax keeps no per-step bookkeeping
        return buf.add(state, jax.tree.map(lambda x: x[:, None], tr))  # (N, 1, ...)

    def window(state, key):
        k_seq, k_goal = jax.random.split(key)
        seq = buf.sample(state, k_seq).experience  # (B, L, ...)
        if respect_episodes:  # goal only up to the first episode end in the window
            done = seq.terminated | seq.truncated
            last = jnp.where(done.any(axis=1), jnp.argmax(done, axis=1), length - 1)
        else:
            last = jnp.full((args.batch_size,), length - 1)
        u = jax.random.uniform(k_goal, (args.batch_size,))
        j = jnp.minimum(jnp.floor(u * (last + 1)).astype(jnp.int32), last)
        return seq, j

    def sample(state, key):
        seq, j = window(state, key)
        batch = jax.tree.map(lambda x: x[:, 0], seq)
        return batch, seq.features[jnp.arange(args.batch_size), j]

    def leaves_episode(state, key):
        """Fraction of goals from another episode than their transition."""
        seq, j = window(state, key)
        return jnp.mean(seq.reward[jnp.arange(args.batch_size), j] != seq.reward[:, 0])

    return init, insert, sample, leaves_episode


# ------------------------------------------------------------ measurement
class Bench:
    """One buffer at one N: compiled functions, a filled state, and timings."""

    def __init__(self, name: str, fns, args: Args, n: int):
        self.name, self.n, self.args = name, n, args
        init, insert, sample, self.leaves_episode = fns
        rows = args.capacity // n
        k = args.scan_length

        def fill(state, stream, steps):
            def body(carry, _):
                state, stream = carry
                stream, tr, t = stream_step(stream, args)
                return (insert(state, tr, t), stream), None

            return jax.lax.scan(body, (state, stream), None, length=steps)[0]

        def insert_many(state, trs, steps):
            return jax.lax.scan(lambda s, x: (insert(s, *x), None), state, (trs, steps))[0]

        def sample_many(state, keys):
            return jax.lax.scan(lambda c, key: (c, sample(state, key)), 0, keys)[1]

        key = jax.random.key(args.seed)
        self.state = jax.jit(init)()
        stream = stream_init(key, n, args.episode_length)
        # Wrap the ring once and a half so the buffer is full and episodes are cut.
        self.state, stream = jax.jit(fill, donate_argnums=0, static_argnums=2)(
            self.state, stream, rows + rows // 2
        )
        jax.block_until_ready(self.state)
        _, tr, t = jax.jit(stream_step, static_argnums=1)(stream, args)

        def stream_many(s):
            def body(c, _):
                c, tr, t = stream_step(c, args)
                return c, (tr, t)

            return jax.lax.scan(body, s, None, length=k)[1]

        trs, ts = jax.jit(stream_many)(stream)
        self.one = (tr, t)
        self.many = (trs, ts)
        keys = jax.random.split(jax.random.key(args.seed + 1), (args.repeats + 1, k + 1))
        self.keys = list(keys[:, 0])  # sliced here, not inside the timed calls
        self.key_chunks = list(keys[:, 1:])

        # Measured now, on the consistent stream (the timed inserts below rewrite
        # the same transitions over and over, so their episode ids repeat).
        fn = jax.jit(self.leaves_episode)
        diag_keys = jax.random.split(jax.random.key(args.seed + 2), 20)
        self.goal_leaves_episode = statistics.mean(float(fn(self.state, k)) for k in diag_keys)

        self.compile_s = {}
        self.fn = {}
        for label, f, donate, fargs in [
            ("insert", insert, (0,), (self.state, tr, t)),
            ("insert_scan", insert_many, (0,), (self.state, trs, ts)),
            ("sample", sample, (), (self.state, self.keys[0])),
            ("sample_scan", sample_many, (), (self.state, self.key_chunks[0])),
        ]:
            t0 = time.perf_counter()
            self.fn[label] = jax.jit(f, donate_argnums=donate).lower(*fargs).compile()
            self.compile_s[label] = time.perf_counter() - t0
        self.times = {label: [] for label in self.fn}
        self.calls = 0

    def run_once(self, label: str) -> None:
        i = self.calls
        t0 = time.perf_counter()
        if label == "insert":
            self.state = self.fn[label](self.state, *self.one)
            jax.block_until_ready(self.state)
        elif label == "insert_scan":
            self.state = self.fn[label](self.state, *self.many)
            jax.block_until_ready(self.state)
        elif label == "sample":
            jax.block_until_ready(self.fn[label](self.state, self.keys[i]))
        else:
            jax.block_until_ready(self.fn[label](self.state, self.key_chunks[i]))
        per_op = self.args.scan_length if label.endswith("_scan") else 1
        self.times[label].append((time.perf_counter() - t0) / per_op * 1e6)

    def result(self) -> dict:
        out = {"buffer": self.name, "num_envs": self.n}
        for label, ts in self.times.items():
            out[f"{label}_us"] = statistics.median(ts)
        out["compile_insert_ms"] = 1e3 * self.compile_s["insert"]
        out["compile_sample_ms"] = 1e3 * self.compile_s["sample"]
        out["goal_leaves_episode"] = self.goal_leaves_episode
        return out


def measure(args: Args, n: int, use_flashbax: bool) -> list[dict]:
    benches = [Bench("ours", make_ours(args, n), args, n)]
    if use_flashbax:
        name = f"flashbax {importlib.metadata.version('flashbax')}"
        benches.append(Bench(f"{name} window", make_flashbax(args, n, False), args, n))
        benches.append(Bench(f"{name} window+done", make_flashbax(args, n, True), args, n))
    labels = ["insert", "insert_scan", "sample", "sample_scan"]
    for b in benches:  # warm-up call of each
        for label in labels:
            b.run_once(label)
            b.times[label].clear()
    for r in range(args.repeats):  # interleaved, order rotated: noise hits every buffer alike
        for label in labels:
            for b in benches[r % len(benches) :] + benches[: r % len(benches)]:
                b.run_once(label)
        for b in benches:
            b.calls += 1
    results = [b.result() for b in benches]
    del benches
    return results


def table(results: list[dict]) -> str:
    head = (
        "| buffer | N | insert µs/call | insert µs in scan | sample+goal µs/call "
        "| sample+goal µs in scan | compile insert ms | compile sample ms "
        "| goals outside episode |"
    )
    lines = [head, "|" + "---|" * 9]
    for r in results:
        lines.append(
            f"| {r['buffer']} | {r['num_envs']} | {r['insert_us']:.0f} | {r['insert_scan_us']:.1f} "
            f"| {r['sample_us']:.0f} | {r['sample_scan_us']:.1f} | {r['compile_insert_ms']:.0f} "
            f"| {r['compile_sample_ms']:.0f} | {100 * r['goal_leaves_episode']:.0f}% |"
        )
    return "\n".join(lines)


def main(args: Args) -> list[dict]:
    print(f"load average {[round(x, 2) for x in os.getloadavg()]} at start", flush=True)
    results = []
    for n in args.num_envs:
        print(f"N={n}: filling and compiling ...", flush=True)
        for row in measure(args, n, args.flashbax):
            append_row(args.rows_out, row)
            results.append(row)
    print(f"load average {[round(x, 2) for x in os.getloadavg()]} at end")
    print(table(results))
    return results


if __name__ == "__main__":
    main(cli.parse(Args))
