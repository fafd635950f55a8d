"""The two didactic results of HIPI (Eysenbach et al. 2020), computed exactly with
the relabeling functions of algos/hipi_rl.py.

Fig. 2 — the partition function. Two trajectories, two tasks whose rewards
differ in scale. Relabeling by reward alone (no log Z) hands both trajectories
to the large-scale task; subtracting log Z(ψ) (Eq. 7) hands each trajectory to
the task it is relatively best at.

Fig. 4 — relabeling lets Q-learning stitch. A gridworld holds two trajectories
that cross: A -> B along a row and C -> D down a column. Tabular goal-conditioned
Q-learning on these transitions, relabeled with the final state of their own
trajectory, reaches only B from A and D from C. Relabeled with the inverse-RL
posterior, the steps towards the crossing are also evidence for the other
trajectory's goal (they are optimal for it too), and Q-learning reaches all four
start-goal pairs through the crossing.

    python experiments/hipi_didactic.py
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


from harness.algos_loader import load_algo  # noqa: E402

hipi_rl = load_algo("hipi_rl")


# ---------------------------------------------------------------- Fig. 2
FIG2_RETURNS = np.array(
    [
        [10.0, 1.0],  # R[i, j]: trajectory i under task j
        [8.0, 2.0],
    ]
)  # task 0 pays ten times more, task 1 prefers τ1


def fig2_posteriors(returns=FIG2_RETURNS) -> dict[str, np.ndarray]:
    """q(ψ | τ_i) with and without the partition function: (2, 2) each."""
    logits = jnp.asarray(returns)
    return {
        name: np.exp(np.asarray(hipi_rl.relabel_log_posterior(logits, use)))
        for name, use in (("with_partition", True), ("without_partition", False))
    }


# ---------------------------------------------------------------- Fig. 4
SIZE = 5
GAMMA = 0.99
WORST = -1.0 / (1.0 - GAMMA)
MOVES = np.array([[0, 1], [0, -1], [1, 0], [-1, 0]])  # right, left, down, up
A, B, C, D = (2, 0), (2, 4), (0, 2), (4, 2)  # A -> B along row 2, C -> D down column 2
GOALS = {"B": B, "D": D}
STARTS = {"A": A, "C": C}


def cell_id(cell) -> int:
    return cell[0] * SIZE + cell[1]


def step(cell, action):
    row, col = np.clip(np.asarray(cell) + MOVES[action], 0, SIZE - 1)
    return int(row), int(col)


def straight_path(start, end):
    """The transitions (s, a, s') of the straight walk from start to end."""
    delta = np.sign(np.subtract(end, start))
    action = int(np.flatnonzero((MOVES == delta).all(axis=1))[0])
    cell, path = start, []
    while cell != end:
        nxt = step(cell, action)
        path.append((cell_id(cell), action, cell_id(nxt)))
        cell = nxt
    return path


@dataclass(frozen=True)
class Dataset:
    s: np.ndarray  # (M,) cell ids
    a: np.ndarray  # (M,)
    s_next: np.ndarray  # (M,)
    final: np.ndarray  # (M,) goal index (into GOALS) of the trajectory's final state


def crossing_dataset() -> Dataset:
    first, second = straight_path(A, B), straight_path(C, D)
    rows = first + second
    final = [0] * len(first) + [1] * len(second)
    s, a, s_next = (np.array(x) for x in zip(*rows, strict=True))
    return Dataset(s=s, a=a, s_next=s_next, final=np.array(final))


def goal_reward(s_next, goal_cell):
    """−1 per step, 0 on the step that reaches the goal, which ends the episode."""
    hit = s_next == cell_id(goal_cell)
    return hit - 1.0, hit


def q_learning(data: Dataset, labels: np.ndarray, gamma=GAMMA, sweeps=4 * SIZE) -> np.ndarray:
    """Tabular Q-iteration on the transitions, each used for the goals its row of
    `labels` (M, G) marks. (s, a, g) never seen stays at −inf; a next state with no
    data for g is valued at the worst return. -> Q (S, A, G)"""
    goals = list(GOALS.values())
    q = np.full((SIZE * SIZE, len(MOVES), len(goals)), -np.inf)
    for _ in range(sweeps):
        new_q = np.full_like(q, -np.inf)
        for i, g in zip(*np.nonzero(labels), strict=True):
            r, done = goal_reward(data.s_next[i], goals[g])
            best_next = q[data.s_next[i], :, g].max()
            future = 0.0 if done else (best_next if np.isfinite(best_next) else WORST)
            new_q[data.s[i], data.a[i], g] = r + gamma * future
        q = new_q
    return q


def optimal_q(gamma=GAMMA, sweeps=4 * SIZE) -> np.ndarray:
    """Q*(s, a, g) of the full gridworld by value iteration: what inverse RL infers
    the reward-optimal behaviour for each task to be. -> (S, A, G)"""
    goals = list(GOALS.values())
    cells = [(r, c) for r in range(SIZE) for c in range(SIZE)]
    q = np.zeros((SIZE * SIZE, len(MOVES), len(goals)))
    for _ in range(sweeps):
        v = q.max(axis=1)  # (S, G)
        for cell in cells:
            for a in range(len(MOVES)):
                nxt = cell_id(step(cell, a))
                for g, goal in enumerate(goals):
                    r, done = goal_reward(nxt, goal)
                    q[cell_id(cell), a, g] = r + gamma * (0.0 if done else v[nxt, g])
    return q


def greedy_reaches(q: np.ndarray, start, goal_index: int, max_steps=2 * SIZE) -> bool:
    goal = list(GOALS.values())[goal_index]
    cell = start
    for _ in range(max_steps):
        values = q[cell_id(cell), :, goal_index]
        if values.max() == -np.inf:
            return False
        cell = step(cell, int(values.argmax()))
        if cell == goal:
            return True
    return False


def relabel_final(data: Dataset) -> np.ndarray:
    labels = np.zeros((len(data.s), len(GOALS)), bool)
    labels[np.arange(len(data.s)), data.final] = True
    return labels


def relabel_inverse_rl(data: Dataset, samples=8, seed=0, use_partition=True) -> np.ndarray:
    """Keep each transition's own label and add `samples` tasks drawn from
    q(ψ | s, a) ∝ exp(Q*(s, a, ψ) − log Z(ψ)) (Eq. 7 with Eq. 8), log Z over the data."""
    labels = relabel_final(data)
    logits = jnp.asarray(optimal_q()[data.s, data.a, :])  # (M, G)
    keys = jax.random.split(jax.random.key(seed), samples)
    for key in keys:
        chosen, _ = hipi_rl.relabel_inverse_rl(key, logits, use_partition)
        labels[np.arange(len(data.s)), np.asarray(chosen)] = True
    return labels


def optimal_for(data: Dataset) -> np.ndarray:
    """(M, G) bool: the transition's action is optimal for the goal under Q*."""
    q = optimal_q()
    return np.isclose(q[data.s, data.a, :], q[data.s].max(axis=1))


def fig4_task_distributions(data: Dataset) -> dict[str, np.ndarray]:
    """q(ψ | s, a) of each transition, (M, G) rows summing to 1, for each relabeling
    rule: inverse RL (the posterior of Eq. 7 with Q*, log Z over the data), the
    trajectory's final state, a task from the uniform prior, every task at once."""
    num, goals = len(data.s), len(GOALS)
    logits = jnp.asarray(optimal_q()[data.s, data.a, :])
    final = relabel_final(data).astype(float)
    return {
        "inverse_rl": np.exp(np.asarray(hipi_rl.relabel_log_posterior(logits, True))),
        "final": final,
        "random": np.full((num, goals), 1.0 / goals),
        "all_goals": np.full((num, goals), 1.0 / goals),  # each label weighs the same
    }


def relabels_by_optimality(q: np.ndarray, optimal: np.ndarray) -> bool:
    """Fig. 4's claim about *which* task a transition gets: nearly all of its mass goes
    to goals its action is optimal for (>= 0.85), and every such goal gets a real
    share (>= 0.25: the steps towards the crossing are evidence for both goals)."""
    on_optimal = np.sum(np.where(optimal, q, 0.0), axis=1)
    return bool(np.all(on_optimal >= 0.85) and np.all(q[optimal] >= 0.25))


def fig4_outcomes() -> dict[str, dict[tuple[str, str], bool]]:
    data = crossing_dataset()
    outcomes = {}
    for name, labels in (("final", relabel_final(data)), ("inverse_rl", relabel_inverse_rl(data))):
        q = q_learning(data, labels)
        outcomes[name] = {
            (s, g): greedy_reaches(q, STARTS[s], gi) for s in STARTS for gi, g in enumerate(GOALS)
        }
    return outcomes


def main():
    np.set_printoptions(precision=3, suppress=True)
    print("HIPI Fig. 2: q(task | trajectory), rows τ0, τ1; columns task 0 (large rewards), task 1")
    print(f"returns R[τ, task]:\n{FIG2_RETURNS}")
    for name, q in fig2_posteriors().items():
        print(f"{name}:\n{q}\n  -> τ0 to task {q[0].argmax()}, τ1 to task {q[1].argmax()}")
    data = crossing_dataset()
    optimal = optimal_for(data)
    print("\nHIPI Fig. 4: q(goal D | s, a) of the 8 transitions (A -> B first, then C -> D)")
    for name, q in fig4_task_distributions(data).items():
        verdict = "follows" if relabels_by_optimality(q, optimal) else "does not follow"
        print(f"{name:>11}: {np.round(q[:, 1], 3)} (goal D), {verdict} optimality")
    print("\nHIPI Fig. 4: does tabular Q-learning reach the goal from the start?")
    outcomes = fig4_outcomes()
    print(f"{'start -> goal':<15}" + "".join(f"{name:>12}" for name in outcomes))
    for pair in outcomes["final"]:
        print(
            f"{pair[0] + ' -> ' + pair[1]:<15}"
            + "".join(f"{'yes' if o[pair] else 'no':>12}" for o in outcomes.values())
        )


if __name__ == "__main__":
    main()
