"""common/buffer.py against a slow, obviously-correct NumPy reference.

Each scenario simulates `num_envs` envs running back-to-back episodes of random
length in [1, max_episode_length] (different per env and per episode) and
inserts `num_inserts` rows. The NumPy reference keeps, for every slot
(row, env), the episode id, the step and the global time of the transition it
currently holds (-1 = never written). Everything the buffer derives from step
counting is checked against what the reference derives from episode ids:

- the episode of a slot = the live slots of its column with the same episode id;
- (back, ahead) = how many of those were written before / after it;
- final = the newest of them; future = uniform over those not older than it;
  episode = uniform over all of them.

Distributions are checked with a chi-square bound (p ~ 1e-4, Wilson-Hilferty
approximation) at fixed seeds, so the tests are deterministic.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from common import buffer
from harness.algos_loader import load_algo

OBS_DIM = 3
# The buffer gives episode bounds and index arithmetic; each algorithm says which goal
# it takes. These tests run HER's choice (algos/her.py) on the buffer; the copies in the
# other scripts must choose the same slots (test_every_script_chooses_goals_alike).
GOAL_STRATEGIES = ("final", "future", "episode")
goal_index = load_algo("her").hindsight_goal_index


# --------------------------------------------------------------------------- #
# Scenarios and the NumPy reference
# --------------------------------------------------------------------------- #


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    num_envs: int
    capacity: int  # in transitions, as passed to buffer.init
    max_episode_length: int
    num_inserts: int
    seed: int
    start_mid_episode: bool = False  # an env's first inserted row may be past step 0

    @property
    def rows(self) -> int:
        return self.capacity // self.num_envs


SCENARIOS = [
    # Fewer rows inserted than the buffer holds: the tail of the ring is unwritten.
    # Recording began in the middle of episodes in some envs (e.g. after a warm-up).
    Scenario(
        "partial",
        num_envs=5,
        capacity=5 * 37,
        max_episode_length=12,
        num_inserts=30,
        seed=0,
        start_mid_episode=True,
    ),
    # Capacity not a multiple of num_envs (rounded down to 37 rows) nor of the episode
    # length; the ring wraps three times, so episodes are cut by the oldest row.
    Scenario(
        "wrapped",
        num_envs=5,
        capacity=5 * 37 + 3,
        max_episode_length=8,
        num_inserts=3 * 37 + 11,
        seed=1,
    ),
    # The smallest legal buffer: exactly one maximal episode per env, wrapped many times.
    Scenario(
        "one_episode_rows",
        num_envs=5,
        capacity=5 * 8,
        max_episode_length=8,
        num_inserts=6 * 8 + 5,
        seed=2,
    ),
    # Every episode is a single step.
    Scenario(
        "length_one_episodes",
        num_envs=3,
        capacity=3 * 10,
        max_episode_length=1,
        num_inserts=25,
        seed=3,
    ),
]
BY_NAME = {s.name: s for s in SCENARIOS}
WRAPPING = [s for s in SCENARIOS if s.num_inserts > s.rows]
NOT_FULL = [s for s in SCENARIOS if s.num_inserts < s.rows]
assert WRAPPING and NOT_FULL


def simulate_episodes(
    rng: np.random.Generator,
    num_envs: int,
    max_len: int,
    num_inserts: int,
    start_mid_episode: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(T, N) step index and globally unique episode id of every inserted transition."""
    steps = np.zeros((num_inserts, num_envs), np.int32)
    episodes = np.zeros((num_inserts, num_envs), np.int32)
    next_id = 0
    for env in range(num_envs):
        t = 0
        first = True
        while t < num_inserts:
            length = int(rng.integers(1, max_len + 1))
            start = int(rng.integers(0, length)) if (first and start_mid_episode) else 0
            first = False
            for s in range(start, length):
                if t == num_inserts:
                    break
                steps[t, env], episodes[t, env] = s, next_id
                t += 1
            next_id += 1
    return steps, episodes


@dataclasses.dataclass
class Reference:
    """What every slot of the ring currently holds, by brute force."""

    episode: np.ndarray  # (rows, N) episode id, -1 = never written
    step: np.ndarray  # (rows, N)
    time: np.ndarray  # (rows, N) global insert index of the transition held, -1 = never written

    @classmethod
    def build(cls, rows: int, steps: np.ndarray, episodes: np.ndarray) -> Reference:
        n = steps.shape[1]
        ref = cls(*(np.full((rows, n), -1, np.int64) for _ in range(3)))
        for time in range(steps.shape[0]):  # replay every insert, overwriting as the ring does
            row = time % rows
            ref.episode[row], ref.step[row], ref.time[row] = episodes[time], steps[time], time
        return ref

    def live(self) -> list[tuple[int, int]]:
        rows, envs = np.nonzero(self.time >= 0)
        return list(zip(rows.tolist(), envs.tolist(), strict=True))

    def episode_slots(self, row: int, env: int) -> list[int]:
        """Rows of `env` holding the same episode as (row, env), oldest first."""
        same = np.nonzero(
            (self.episode[:, env] == self.episode[row, env]) & (self.time[:, env] >= 0)
        )[0]
        return sorted(same.tolist(), key=lambda r: self.time[r, env])

    def bounds(self, row: int, env: int) -> tuple[int, int]:
        times = self.time[self.episode_slots(row, env), env]
        return int(np.sum(times < self.time[row, env])), int(np.sum(times > self.time[row, env]))

    def final(self, row: int, env: int) -> int:
        return self.episode_slots(row, env)[-1]

    def candidates(self, row: int, env: int, strategy: str) -> list[int]:
        slots = self.episode_slots(row, env)
        if strategy == "final":
            return slots[-1:]
        if strategy == "future":
            return [r for r in slots if self.time[r, env] >= self.time[row, env]]
        return slots


def transitions(steps: np.ndarray, episodes: np.ndarray) -> dict[str, jax.Array]:
    """(T, N, ...) pytree of what gets written: the ids themselves plus a float leaf."""
    obs = episodes[..., None] + steps[..., None] / 100.0 + np.arange(OBS_DIM) / 10.0
    return {
        "episode": jnp.asarray(episodes),
        "step": jnp.asarray(steps),
        "obs": jnp.asarray(obs, jnp.float32),
    }


def _fill(state: buffer.BufferState, data, steps):
    def body(s, x):
        row, step = x
        return buffer.insert(s, row, step), None

    return jax.lax.scan(body, state, (data, steps))[0]


fill = jax.jit(_fill)

SAMPLES = 200_000  # sampled slots per scenario (one batch)
REPS = 400  # copies of every live slot, each with its own goal draw


def example_transition():
    return {"episode": jnp.int32(0), "step": jnp.int32(0), "obs": jnp.zeros(OBS_DIM, jnp.float32)}


@functools.partial(jax.jit, static_argnames="num_samples")
def probe(state: buffer.BufferState, key: jax.Array, reps: buffer.Index, num_samples: int):
    """Everything the tests look at, in one compiled call per scenario (XLA compiles
    are the slow part of this file). The first `num_samples` entries come from
    `sample_index`, the rest are the given slots; goal draws are independent per entry."""
    k_sample, *k_goal = jax.random.split(key, 1 + len(GOAL_STRATEGIES))
    sampled = buffer.sample_index(state, k_sample, num_samples)
    idx = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), sampled, reps)
    out = {
        "index": idx,
        "bounds": buffer.episode_bounds(state, idx),
        "data": buffer.gather(state, idx),
    }
    for strategy, k in zip(GOAL_STRATEGIES, k_goal, strict=True):
        out[strategy] = goal_index(state, k, idx, strategy)
    return out


@dataclasses.dataclass
class Built:
    """A filled buffer, its reference, and the probe results split in two parts:
    `sample` (SAMPLES slots from sample_index) and `reps` (every live slot REPS
    times, live slot i at entries [i*REPS, (i+1)*REPS))."""

    state: buffer.BufferState
    ref: Reference
    live: np.ndarray  # (L, 2) every live (row, env)
    sample: dict
    reps: dict


@functools.cache
def built(name: str) -> Built:
    sc = BY_NAME[name]
    steps, episodes = simulate_episodes(
        np.random.default_rng(sc.seed),
        sc.num_envs,
        sc.max_episode_length,
        sc.num_inserts,
        sc.start_mid_episode,
    )
    state = buffer.init(example_transition(), sc.num_envs, sc.capacity, sc.max_episode_length)
    state = fill(state, transitions(steps, episodes), jnp.asarray(steps))
    ref = Reference.build(sc.rows, steps, episodes)
    live = np.array(ref.live())
    reps = np.repeat(live, REPS, axis=0)
    out = probe(
        state,
        jax.random.key(1000 + sc.seed),
        buffer.Index(
            row=jnp.asarray(reps[:, 0], jnp.int32), env=jnp.asarray(reps[:, 1], jnp.int32)
        ),
        num_samples=SAMPLES,
    )
    out = jax.tree.map(np.asarray, out)
    return Built(
        state,
        ref,
        live,
        jax.tree.map(lambda x: x[:SAMPLES], out),
        jax.tree.map(lambda x: x[SAMPLES:], out),
    )


def chi2_bound(df: int, z: float = 3.72) -> float:
    """Upper chi-square quantile at one-sided p ~ 1e-4 (Wilson-Hilferty)."""
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


# --------------------------------------------------------------------------- #
# Layout and sampling
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("sc", SCENARIOS, ids=lambda s: s.name)
def test_insert_layout_matches_reference(sc: Scenario):
    b = built(sc.name)
    state, ref = b.state, b.ref
    assert state.step.shape == (sc.rows, sc.num_envs)
    assert int(buffer.size(state)) == min(sc.num_inserts, sc.rows)
    assert bool(state.full) == (sc.num_inserts >= sc.rows)
    assert int(state.pos) == sc.num_inserts % sc.rows
    live = ref.time >= 0
    assert live.sum() == len(b.live) == min(sc.num_inserts, sc.rows) * sc.num_envs
    np.testing.assert_array_equal(np.asarray(state.data["episode"])[live], ref.episode[live])
    np.testing.assert_array_equal(np.asarray(state.data["step"])[live], ref.step[live])
    np.testing.assert_array_equal(np.asarray(state.step)[live], ref.step[live])
    # gather reads back what was written at the sampled slots.
    idx, data = b.sample["index"], b.sample["data"]
    np.testing.assert_array_equal(data["episode"], ref.episode[idx.row, idx.env])
    np.testing.assert_array_equal(data["step"], ref.step[idx.row, idx.env])
    assert data["obs"].shape == (SAMPLES, OBS_DIM)


@pytest.mark.parametrize("sc", SCENARIOS, ids=lambda s: s.name)
def test_sample_index_returns_only_written_live_slots(sc: Scenario):
    b = built(sc.name)
    rows, envs = b.sample["index"].row, b.sample["index"].env
    assert rows.shape == envs.shape == (SAMPLES,) and rows.dtype == np.int32
    assert rows.min() >= 0 and rows.max() < sc.rows
    assert envs.min() >= 0 and envs.max() < sc.num_envs
    assert (b.ref.time[rows, envs] >= 0).all(), "sampled a never-written slot"


@pytest.mark.parametrize("sc", SCENARIOS, ids=lambda s: s.name)
def test_sample_index_is_roughly_uniform_over_live_slots(sc: Scenario):
    b = built(sc.name)
    slot_id = np.full((sc.rows, sc.num_envs), -1)
    slot_id[b.live[:, 0], b.live[:, 1]] = np.arange(len(b.live))
    idx = b.sample["index"]
    counts = np.bincount(slot_id[idx.row, idx.env], minlength=len(b.live))
    expected = SAMPLES / len(b.live)
    chi2 = np.sum((counts - expected) ** 2 / expected)
    assert chi2 < chi2_bound(len(b.live) - 1), (chi2, len(b.live))


# --------------------------------------------------------------------------- #
# Episode bounds and goal indices
# --------------------------------------------------------------------------- #


def bounds_table(b: Built) -> np.ndarray:
    """(rows, N, 2) reference (back, ahead) of every live slot."""
    table = np.full((*b.ref.time.shape, 2), -1)
    for r, e in b.live:
        table[r, e] = b.ref.bounds(r, e)
    return table


@pytest.mark.parametrize("sc", SCENARIOS, ids=lambda s: s.name)
def test_episode_bounds_equal_reference_for_every_live_slot(sc: Scenario):
    b = built(sc.name)
    back, ahead = (x[::REPS] for x in b.reps["bounds"])  # one entry per live slot
    want = bounds_table(b)[b.live[:, 0], b.live[:, 1]]
    np.testing.assert_array_equal(back, want[:, 0])
    np.testing.assert_array_equal(ahead, want[:, 1])
    assert back.dtype == np.int32 and ahead.dtype == np.int32


@pytest.mark.parametrize("sc", SCENARIOS, ids=lambda s: s.name)
def test_episode_bounds_of_sampled_slots_equal_reference(sc: Scenario):
    b = built(sc.name)
    idx = b.sample["index"]
    np.testing.assert_array_equal(
        np.stack(b.sample["bounds"], -1), bounds_table(b)[idx.row, idx.env]
    )


def test_scenarios_contain_the_hard_cases():
    """The scenarios really hold the cases the exact tests are meant to cover."""
    partial = built("partial").ref
    assert (partial.step[0] > 0).any() and (partial.step[0] == 0).any()  # mid-episode starts
    sc = BY_NAME["wrapped"]
    ref = built(sc.name).ref
    live = ref.live()
    cut = [s for s in live if ref.bounds(*s)[0] < ref.step[s]]  # episode start overwritten
    newest_row = (sc.num_inserts - 1) % sc.rows
    running = [s for s in live if ref.final(*s) == newest_row and ref.step[s] > 0]
    assert cut and running
    lengths = {int(ref.step[s]) + ref.bounds(*s)[1] + 1 for s in live}
    assert len(lengths) >= 4, "episode lengths should vary"


@pytest.mark.parametrize("strategy", GOAL_STRATEGIES)
@pytest.mark.parametrize("sc", SCENARIOS, ids=lambda s: s.name)
def test_goal_index_never_leaves_episode_nor_reads_dead_slots(sc: Scenario, strategy: str):
    b = built(sc.name)
    for part in (b.sample, b.reps):
        r, e = part["index"].row, part["index"].env
        gr, ge = part[strategy].row, part[strategy].env
        np.testing.assert_array_equal(ge, e)
        assert gr.min() >= 0 and gr.max() < sc.rows
        assert (b.ref.time[gr, ge] >= 0).all(), "goal from a never-written slot"
        # Same episode id means neither another episode nor an overwritten slot.
        np.testing.assert_array_equal(b.ref.episode[gr, ge], b.ref.episode[r, e])


@pytest.mark.parametrize("sc", SCENARIOS, ids=lambda s: s.name)
def test_future_goal_never_goes_back_in_time(sc: Scenario):
    b = built(sc.name)
    for part in (b.sample, b.reps):
        r, e = part["index"].row, part["index"].env
        gr = part["future"].row
        assert (b.ref.time[gr, e] >= b.ref.time[r, e]).all(), "future goal went back in time"
        assert (b.ref.step[gr, e] >= b.ref.step[r, e]).all()


@pytest.mark.parametrize("sc", SCENARIOS, ids=lambda s: s.name)
def test_final_goal_is_last_written_step_of_episode(sc: Scenario):
    """Finished episodes: their last step; still-running ones: the newest written step.
    Deterministic: every one of the REPS draws per slot gives it."""
    b = built(sc.name)
    table = np.full(b.ref.time.shape, -1)
    for r, e in b.live:
        table[r, e] = b.ref.final(r, e)
    for part in (b.sample, b.reps):
        idx = part["index"]
        np.testing.assert_array_equal(part["final"].row, table[idx.row, idx.env])


@pytest.mark.parametrize("strategy", ["future", "episode"])
@pytest.mark.parametrize("sc", SCENARIOS, ids=lambda s: s.name)
def test_goal_frequencies_match_uniform_reference(sc: Scenario, strategy: str):
    """Every live slot drawn REPS times; per slot the goal rows must be uniform over
    the reference candidates (all of them hit), pooled chi-square over slots."""
    b = built(sc.name)
    goal_rows = b.reps[strategy].row
    chi2, df = 0.0, 0
    for i, (r, e) in enumerate(b.live):
        cand = b.ref.candidates(r, e, strategy)
        got = goal_rows[i * REPS : (i + 1) * REPS]
        counts = np.array([np.sum(got == c) for c in cand])
        assert counts.sum() == REPS, f"goal outside the reference candidates for slot {(r, e)}"
        assert (counts > 0).all(), f"slot {(r, e)}: some candidates never drawn {cand} {counts}"
        expected = REPS / len(cand)
        chi2 += np.sum((counts - expected) ** 2 / expected)
        df += len(cand) - 1
    if sc.max_episode_length == 1:
        assert df == 0  # a one-step episode is its own only goal
        return
    assert chi2 < chi2_bound(df), (chi2, df)


def test_episode_goal_reaches_steps_before_the_sample():
    b = built("wrapped")
    ref = b.ref
    # Slots in the middle of their stored episode: earlier and later steps both stored.
    middle = [i for i, (r, e) in enumerate(b.live) if min(ref.bounds(r, e)) >= 2]
    assert middle
    goal_rows = b.reps["episode"].row
    for i in middle:
        r, e = b.live[i]
        got = set(goal_rows[i * REPS : (i + 1) * REPS].tolist())
        assert got == set(ref.episode_slots(r, e))
        assert any(ref.time[g, e] < ref.time[r, e] for g in got)


# --------------------------------------------------------------------------- #
# Errors
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("bad", ["futrue", "FINAL", "", "random"])
def test_invalid_strategy_raises_value_error(bad: str):
    b = built("partial")
    idx = jax.tree.map(lambda x: jnp.asarray(x[:8]), b.sample["index"])
    with pytest.raises(ValueError, match="unknown goal strategy"):
        goal_index(b.state, jax.random.key(1), idx, bad)
    jitted = jax.jit(goal_index, static_argnums=3)
    with pytest.raises(ValueError, match="unknown goal strategy"):
        jitted(b.state, jax.random.key(1), idx, bad)


@pytest.mark.parametrize("algo", ["her_dqn", "hindsight_em", "hipi_rl"])
def test_every_script_chooses_goals_alike(algo: str):
    """Each script holds its own copy of the goal choice; on the same slots and keys they
    pick the same steps (integers: exact)."""
    b = built("partial")
    idx = jax.tree.map(jnp.asarray, b.sample["index"])
    theirs = load_algo(algo).hindsight_goal_index
    # hipi_rl and hindsight_em take goals at or after the step only
    strategies = GOAL_STRATEGIES if algo == "her_dqn" else ("final", "future")
    for strategy in strategies:
        key = jax.random.key(len(strategy))
        want = jax.jit(goal_index, static_argnums=3)(b.state, key, idx, strategy)
        got = jax.jit(theirs, static_argnums=3)(b.state, key, idx, strategy)
        np.testing.assert_array_equal(got.row, want.row, err_msg=f"{algo} {strategy}")


def test_init_rejects_capacity_below_one_episode_per_env():
    with pytest.raises(ValueError, match=r"fewer than one episode.*at least 40"):
        buffer.init(example_transition(), num_envs=5, capacity=39, max_episode_length=8)
    with pytest.raises(ValueError, match="capacity"):
        buffer.init(example_transition(), num_envs=1024, capacity=1000, max_episode_length=50)
    state = buffer.init(example_transition(), num_envs=5, capacity=40, max_episode_length=8)
    assert state.step.shape == (8, 5)


# --------------------------------------------------------------------------- #
# jit and vmap (every test above already runs the buffer under jax.jit)
# --------------------------------------------------------------------------- #


def test_vmap_over_seeds_matches_each_seeds_reference():
    """A leading seed axis on the buffer state: each seed has its own episodes, its
    own ring position; insert, sample, bounds and goals all run vmapped under jit."""
    num_seeds, n, w, cap, t = 3, 5, 8, 5 * 29, 29 * 2 + 13
    rows = cap // n
    hist = [
        simulate_episodes(np.random.default_rng(100 + s), n, w, t - s * 30)
        for s in range(num_seeds)
    ]
    # Different insert counts per seed (so different pos/full): pad the shorter
    # histories by running them for fewer steps via a per-seed mask on the scan.
    lengths = np.array([h[0].shape[0] for h in hist])
    steps = np.zeros((num_seeds, t, n), np.int32)
    eps = np.zeros((num_seeds, t, n), np.int32)
    for s, (st, ep) in enumerate(hist):
        steps[s, : len(st)], eps[s, : len(ep)] = st, ep

    def fill_masked(state, data, step, length):
        def body(carry, x):
            i, row, st = x
            new = buffer.insert(carry, row, st)
            return jax.tree.map(lambda a, b: jnp.where(i < length, a, b), new, carry), None

        return jax.lax.scan(body, state, (jnp.arange(t), data, step))[0]

    example = example_transition()
    states = jax.vmap(lambda _: buffer.init(example, n, cap, w))(jnp.arange(num_seeds))
    assert states.step.shape == (num_seeds, rows, n)
    states = jax.jit(jax.vmap(fill_masked))(
        states, transitions(steps, eps), jnp.asarray(steps), jnp.asarray(lengths)
    )

    def one(state, key):
        k_sample, *k_goal = jax.random.split(key, 4)
        idx = buffer.sample_index(state, k_sample, 2048)
        goals = {
            s: goal_index(state, k, idx, s) for s, k in zip(GOAL_STRATEGIES, k_goal, strict=True)
        }
        return idx, goals, buffer.episode_bounds(state, idx)

    sample_all = jax.jit(jax.vmap(one))

    seed_keys = jax.random.split(jax.random.key(31), num_seeds)
    idx, goals, (back, ahead) = sample_all(states, seed_keys)
    for s in range(num_seeds):
        ref = Reference.build(rows, *hist[s])
        assert int(states.pos[s]) == lengths[s] % rows
        assert bool(states.full[s]) == (lengths[s] >= rows)
        r, e = np.asarray(idx.row[s]), np.asarray(idx.env[s])
        assert (ref.time[r, e] >= 0).all()
        want = np.array([ref.bounds(a, b) for a, b in zip(r, e, strict=True)])
        np.testing.assert_array_equal(np.asarray(back[s]), want[:, 0])
        np.testing.assert_array_equal(np.asarray(ahead[s]), want[:, 1])
        for strategy, g in goals.items():
            gr = np.asarray(g.row[s])
            np.testing.assert_array_equal(ref.episode[gr, e], ref.episode[r, e])
            if strategy == "future":
                assert (ref.time[gr, e] >= ref.time[r, e]).all()
            if strategy == "final":
                want_final = [ref.final(a, b) for a, b in zip(r, e, strict=True)]
                np.testing.assert_array_equal(gr, want_final)
