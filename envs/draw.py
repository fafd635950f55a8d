"""Frames of the 2-D pure-JAX envs, drawn on the host with matplotlib (for videos)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def frames(num_frames: int, width: int, height: int, draw: Callable) -> np.ndarray:
    """uint8 (num_frames, height, width, 3): `draw(ax, t)` paints frame t on a cleared axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    dpi = 100
    figure = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    canvas = FigureCanvasAgg(figure)
    ax = figure.add_axes((0.02, 0.02, 0.96, 0.88))
    out = np.empty((num_frames, height, width, 3), np.uint8)
    for t in range(num_frames):
        ax.clear()
        ax.set_xticks([])
        ax.set_yticks([])
        draw(ax, t)
        canvas.draw()
        out[t] = np.asarray(canvas.buffer_rgba())[:height, :width, :3]
    return out


def caption(ax, states, t: int, text: str = "") -> None:
    """Step counter, success and an env-specific note above the picture."""
    solved = " solved" if bool(np.asarray(states.success)[t]) and t > 0 else ""
    ax.set_title(f"t={t}{solved}{' ' + text if text else ''}", fontsize=8)


def point_path(ax, points: np.ndarray, t: int, goal: np.ndarray, margin: float) -> None:
    """The path so far (x = points[:, 0], y = points[:, 1]), the point, the goal disc."""
    from matplotlib.patches import Circle

    ax.add_patch(Circle((goal[0], goal[1]), margin, color="tab:green", alpha=0.5))
    ax.plot(goal[0], goal[1], marker="*", color="tab:green", markersize=8)
    ax.plot(points[: t + 1, 0], points[: t + 1, 1], color="tab:blue", linewidth=1)
    ax.plot(points[t, 0], points[t, 1], marker="o", color="tab:blue", markersize=6)
