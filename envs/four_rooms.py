"""2D point navigation in the FourRooms map (Eysenbach et al. 2020, HIPI, App. C.7),
the point env of Search on the Replay Buffer (Eysenbach et al. 2019): continuous
moves with Gaussian action noise, walls that block motion, sparse -1/0 reward."""

from __future__ import annotations

from collections import deque

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from envs import draw
from envs.core import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, Env, sparse_reward, within_margin

# SoRB's FourRooms map: walls[i, j] = 1 is a wall cell; position (i, j) lies in cell
# (floor(i), floor(j)). SoRB plots i on the x axis and j on the y axis, so (0, 0) is
# the lower-left corner.
FOUR_ROOMS_WALLS = np.array(
    [
        [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0],
        [1, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 1, 1, 1, 0, 1, 1],
        [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0],
    ],
    dtype=bool,
)


def dilate_walls(walls: np.ndarray, factor: int) -> np.ndarray:
    """Each cell becomes a factor x factor block (SoRB's `resize_walls`)."""
    return np.repeat(np.repeat(walls, factor, axis=0), factor, axis=1)


def grid_distances(walls: np.ndarray, start_cell: tuple[int, int]) -> np.ndarray:
    """BFS shortest-path length in cells from `start_cell` over free cells; -1 if unreachable.

    8-connected like SoRB's all-pairs distances, except that a diagonal move needs
    both side cells free: the per-axis sub-steps cannot cut a wall corner.
    """
    height, width = walls.shape
    dist = np.full((height, width), -1, dtype=np.int64)
    dist[start_cell] = 0
    queue = deque([start_cell])
    while queue:
        i, j = queue.popleft()
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                ni, nj = i + di, j + dj
                if (di, dj) == (0, 0) or not (0 <= ni < height and 0 <= nj < width):
                    continue
                if walls[ni, nj] or dist[ni, nj] >= 0:
                    continue
                if di and dj and (walls[i + di, j] or walls[i, j + dj]):
                    continue
                dist[ni, nj] = dist[i, j] + 1
                queue.append((ni, nj))
    return dist


def distance_fields(walls: np.ndarray) -> np.ndarray:
    """(H, W, H, W) shortest-path lengths in cells between every pair of cells, with
    `grid_distances`' moves; -1 where either cell is a wall or the pair is unreachable.

    All targets at once: every cell repeatedly takes one more than its best allowed
    neighbour until nothing changes (the moves are symmetric, so the distance to a
    target equals the distance from it).
    """
    height, width = walls.shape
    free = ~walls
    far = height * width  # longer than any path
    dist = np.full((height, width, height, width), far, np.int32)
    cells = np.argwhere(free)
    dist[cells[:, 0], cells[:, 1], cells[:, 0], cells[:, 1]] = 0

    def shifted(a, di, dj):  # a[..., i + di, j + dj]; outside the map: blocked, far
        outside = False if a.dtype == bool else far
        padded = np.pad(a, [(0, 0)] * (a.ndim - 2) + [(1, 1), (1, 1)], constant_values=outside)
        return padded[..., 1 + di : 1 + di + height, 1 + dj : 1 + dj + width]

    moves = []
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            if (di, dj) == (0, 0):
                continue
            allowed = free & shifted(free, di, dj)
            if di and dj:
                allowed &= shifted(free, di, 0) & shifted(free, 0, dj)
            moves.append((di, dj, allowed))
    while True:
        best = dist
        for di, dj, allowed in moves:
            best = np.minimum(best, np.where(allowed, shifted(dist, di, dj) + 1, far))
        if np.array_equal(best, dist):
            break
        dist = best
    dist[dist >= far] = -1
    return dist


@struct.dataclass
class CellGoals:
    """Goal reaching where the prior picks a cell uniformly from `goal_cells`, then a
    point uniformly inside it. Reward, success and achieved are GoalReaching's."""

    goal_cells: jax.Array  # (M, 2) int32, (i, j) of the cells goals may lie in
    margin: float = struct.field(pytree_node=False, default=0.3)

    @property
    def task_dim(self) -> int:
        return 2

    @property
    def tasks(self) -> None:
        return None

    @property
    def reward_bounds(self) -> tuple[float, float]:
        return (-1.0, 0.0)

    def sample(self, key, shape=()):
        cell_key, offset_key = jax.random.split(key)
        index = jax.random.randint(cell_key, shape, 0, self.goal_cells.shape[0])
        cell = self.goal_cells[index].astype(jnp.float32)  # (*shape, 2)
        return cell + jax.random.uniform(offset_key, (*shape, 2))

    def success(self, features, task):
        return within_margin(features, task, self.margin)

    def reward(self, features, action, task):
        del action
        return sparse_reward(self.success(features, task))

    def achieved(self, features):
        return features


class FourRooms(Env):
    """A point in the dilated FourRooms map, starting in the lower-left corner (0, 0).

    Settings and their sources:
    - map: SoRB's 11x11 FourRooms, dilated by `resize_factor = 3` to 33x33 cells
      (HIPI App. C.7; `point_FourRooms_3` in HIPI's README);
    - dynamics (SoRB `PointEnv.step`, HIPI `PointDynamics.step`): the action is the
      desired change of position; `action + N(0, action_noise^2)` is clipped to
      [-1, 1]^2 and applied in 10 sub-steps of 1/10, axis by axis, each sub-move
      dropped if it would leave [0, H] x [0, W] or enter a wall cell.
      `action_noise = 1.0` is their default. They add one scalar noise sample to
      both axes; we draw independent noise per axis;
    - start (0, 0) (HIPI: `random_initial_state=False`);
    - goals at least `min_goal_steps = 15` steps away (HIPI App. C.7). HIPI's code
      rejects goals closer than 15 in Euclidean distance; we use the BFS distance
      in cells (`grid_distances`) from the start cell, which follows the walls;
    - success within L2 `margin = 0.3` (HIPI README: `at_goal_dist=0.3`; SoRB and
      HIPI's code default are 1.0); 75-step episodes (HIPI README:
      `max_episode_steps=75`); terminate on success (HIPI's `dones`).

    Observation, features and task are raw positions in [0, H] x [0, W] (as HIPI;
    SoRB divides by H and W). `walls` (H, W) bool and `start` (2,) are exposed for
    plots; `goal_distance` (H, W) holds the BFS distances (-1: wall or unreachable).
    `physics` is the position, so tests can place the point by hand.
    """

    num_substeps = 10

    # what envs.make accepts for each parameter, beyond its type
    PARAMETER_RANGES = {
        "resize_factor": AT_LEAST_ONE,
        "action_noise": NON_NEGATIVE,
        "margin": POSITIVE,
        "min_goal_steps": NON_NEGATIVE,
        "episode_length": AT_LEAST_ONE,
    }

    def __init__(
        self,
        resize_factor: int = 3,
        action_noise: float = 1.0,
        margin: float = 0.3,
        min_goal_steps: int = 15,
        episode_length: int = 75,
        terminate_on_success: bool = True,
    ):
        if resize_factor < 1:
            raise ValueError(f"resize_factor must be at least 1, got {resize_factor}")
        if action_noise < 0:
            raise ValueError(f"action_noise must be non-negative, got {action_noise}")
        walls = dilate_walls(FOUR_ROOMS_WALLS, resize_factor)
        self.height, self.width = walls.shape
        start_cell = (0, 0)
        self.goal_distance = grid_distances(walls, start_cell)
        goal_cells = np.argwhere(self.goal_distance >= min_goal_steps)
        if len(goal_cells) == 0:
            raise ValueError(
                f"no free cell is {min_goal_steps} or more steps from the start in a map "
                f"resized by {resize_factor}; lower min_goal_steps"
            )
        self.walls = jnp.asarray(walls)
        self.start = jnp.asarray(start_cell, jnp.float32)
        self.upper = jnp.asarray([self.height, self.width], jnp.float32)
        self.action_noise = action_noise
        self.family = CellGoals(goal_cells=jnp.asarray(goal_cells, jnp.int32), margin=margin)
        self.observation_size = 2
        self.action_size = 2
        self.episode_length = episode_length
        self.terminate_on_success = terminate_on_success

    def is_blocked(self, position: jax.Array) -> jax.Array:
        """Whether `position` (2,) is outside the map or inside a wall cell."""
        outside = jnp.any((position < 0.0) | (position > self.upper))
        # On the upper border floor() names a cell one past the last: use the last.
        cell = jnp.clip(jnp.floor(position).astype(jnp.int32), 0, self.upper.astype(jnp.int32) - 1)
        return outside | self.walls[cell[0], cell[1]]

    def _reset_physics(self, key, task):
        del key, task
        return self.start, self.start, self.start

    def _step_physics(self, physics, action, key):
        noise = self.action_noise * jax.random.normal(key, (2,))
        move = jnp.clip(action + noise, -1.0, 1.0) / self.num_substeps

        def substep(_, position):
            for axis in range(2):
                candidate = position.at[axis].add(move[axis])
                position = jnp.where(self.is_blocked(candidate), position, candidate)
            return position

        position = jax.lax.fori_loop(0, self.num_substeps, substep, physics)
        return position, position, position

    def render(self, states, width=240, height=240):
        """The walls, the path (row = y, column = x) and the goal cell within its margin."""
        points = np.asarray(states.next_obs)[:, ::-1]
        goals = np.asarray(states.task)[:, ::-1]
        walls = np.asarray(self.walls)

        def paint(ax, t):
            ax.imshow(walls, origin="lower", cmap="Greys", extent=(0, self.width, 0, self.height))
            ax.set_xlim(0, self.width)
            ax.set_ylim(0, self.height)
            draw.point_path(ax, points, t, goals[t], self.family.margin)
            draw.caption(ax, states, t)

        return draw.frames(len(points), width, height, paint)
