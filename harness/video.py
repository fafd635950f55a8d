"""Videos of a policy: one episode recorded inside jit, drawn by the env, saved as GIF.

The episode is rolled with `Env.transition` (no auto-reset), so its last frame is the
state the episode ended in; frames after the first `terminated | truncated` are cut.
Each env draws its own frames (`Env.render`: matplotlib for the 2-D pure-JAX envs,
`mujoco.Renderer` for MJX envs). GIFs are written with Pillow, atomically.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import jax
import numpy as np
from PIL import Image

from envs.core import Env, EnvState, RenderError


class VideoError(RuntimeError):
    """A video cannot be made here (the env cannot draw, or no GL backend)."""


def record_episode(env: Env, policy: Callable, key: jax.Array) -> EnvState:
    """One episode of ONE env as host-side NumPy arrays with a time axis (T + 1, ...):
    the first state, then the state reached by each step until the episode ended.
    `key` holds the raw key data."""

    @jax.jit
    def rollout(key):
        reset_key, run_key = jax.random.split(key)
        first = env.reset(reset_key)

        def step(state, step_key):
            action = policy(state.obs[None], state.task[None], step_key)[0]
            nxt = env.transition(state, action)
            return nxt, nxt

        _, states = jax.lax.scan(step, first, jax.random.split(run_key, env.episode_length))
        states = jax.tree.map(lambda a, b: jax.numpy.concatenate([a[None], b]), first, states)
        return states.replace(key=jax.random.key_data(states.key))  # NumPy holds no typed keys

    states = jax.device_get(rollout(key))
    done = np.asarray(states.terminated | states.truncated)
    end = int(np.argmax(done)) if done.any() else len(done) - 1
    return jax.tree.map(lambda x: np.asarray(x)[: end + 1], states)


def write_gif(frames: np.ndarray, path: str, fps: int = 10) -> None:
    """uint8 frames (T, H, W, 3) to an animated GIF at `path`, written atomically."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype}{frames.shape}")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    images = [Image.fromarray(frame) for frame in frames]
    tmp = f"{path}.tmp"
    images[0].save(
        tmp,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=max(1, round(1000 / fps)),
        loop=0,
    )
    os.replace(tmp, path)


def save_episode(env: Env, policy: Callable, key: jax.Array, path: str, fps: int = 10) -> str:
    """Record one episode of `policy` and save it as a GIF at `path`; returns `path`.
    Raises `VideoError` with one sentence when the env cannot be drawn here."""
    states = record_episode(env, policy, key)
    try:
        frames = env.render(states)
    except RenderError as err:
        raise VideoError(str(err)) from None
    write_gif(frames, path, fps)
    return path
