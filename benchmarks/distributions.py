"""Speed of the tanh-squashed Gaussian policy distribution: algos/hipi_rl.py's
`sample_action` + `action_log_prob` (distrax) against the same computation written
out in jax.numpy (the change-of-variables formula; tests/test_distributions.py checks
the scripts' distributions against it in float64).

One call draws a squashed action with its log-prob and takes the log-prob of a given
(stored) action, for `rows` rows of `action_dim` dims: the work of one SAC update
(`rows` = batch × K candidate tasks in HIPI-RL's relabeling). Each side is timed
jitted, forward only and with the gradient of the summed log-probs with respect to
the policy's mean and log-std (what the actor loss differentiates). A measurement is
`--calls` back-to-back calls, ended by `block_until_ready`; the two sides are measured
alternately `--repeats` times, so a busy machine slows both alike, and the median per
call is printed with the ratio distrax / hand-written.

    python benchmarks/distributions.py
    python benchmarks/distributions.py --rows 256 4096 --repeats 50
"""

from __future__ import annotations

import importlib
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass

import distrax
import jax
import jax.numpy as jnp
import tyro

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
hipi_rl = importlib.import_module("algos.hipi_rl")

ACTION_CLIP = 1.0 - 1e-6  # as algos/hipi_rl.py's action_log_prob clips stored actions


@dataclass(frozen=True)
class Args:
    rows: tuple[int, ...] = (256, 4096)
    """numbers of rows per call (256 × K: K = 1 and K = 16 candidate tasks)"""
    action_dim: int = 6
    """action dimensions"""
    repeats: int = 30
    """alternating measurements of each side"""
    calls: int = 20
    """jitted calls per measurement"""
    seed: int = 0


def squashed_log_prob(mean, log_std, pre_tanh):
    """log π(tanh u) = log N(u; mean, std) − Σ log(1 − tanh²u), written out."""
    z = (pre_tanh - mean) / jnp.exp(log_std)
    gauss = -0.5 * z**2 - log_std - 0.5 * math.log(2 * math.pi)
    log_det = 2.0 * (math.log(2.0) - pre_tanh - jax.nn.softplus(-2.0 * pre_tanh))
    return jnp.sum(gauss - log_det, axis=-1)


def hand_written(key, mean, log_std, action):
    pre_tanh = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape)
    stored = jnp.arctanh(jnp.clip(action, -ACTION_CLIP, ACTION_CLIP))
    return (
        jnp.tanh(pre_tanh),
        squashed_log_prob(mean, log_std, pre_tanh),
        squashed_log_prob(mean, log_std, stored),
    )


def with_distrax(key, mean, log_std, action):
    sampled, sampled_log_prob = hipi_rl.sample_action(key, mean, log_std)
    return sampled, sampled_log_prob, hipi_rl.action_log_prob(mean, log_std, action)


def with_gradient(fn):
    def loss(mean, log_std, key, action):
        _, sampled_log_prob, stored_log_prob = fn(key, mean, log_std, action)
        return jnp.sum(sampled_log_prob) + jnp.sum(stored_log_prob)

    grad = jax.grad(loss, argnums=(0, 1))
    return lambda key, mean, log_std, action: grad(mean, log_std, key, action)


def seconds_per_call(fn, inputs, calls):
    start = time.perf_counter()
    for _ in range(calls):
        out = fn(*inputs)
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / calls


def main(args: Args) -> None:
    print(
        f"jax {jax.__version__}, distrax {distrax.__version__}, {jax.devices()[0].platform}, "
        f"action_dim {args.action_dim}; median of {args.repeats} x {args.calls} calls"
    )
    print(f"{'rows':>6} {'pass':>8} {'hand-written':>14} {'distrax':>12} {'distrax/hand':>13}")
    for rows in args.rows:
        mean_key, std_key, action_key, key = jax.random.split(jax.random.key(args.seed), 4)
        shape = (rows, args.action_dim)
        mean = 2.0 * jax.random.normal(mean_key, shape)
        log_std = jax.random.uniform(std_key, shape, minval=-5.0, maxval=2.0)  # actor's clip
        action = jnp.tanh(2.0 * jax.random.normal(action_key, shape))
        inputs = (key, mean, log_std, action)
        for name, wrap in (("forward", lambda f: f), ("+grad", with_gradient)):
            sides = {"hand": jax.jit(wrap(hand_written)), "distrax": jax.jit(wrap(with_distrax))}
            for fn in sides.values():  # compile, and run once
                jax.block_until_ready(fn(*inputs))
            times = {side: [] for side in sides}
            for _ in range(args.repeats):
                for side, fn in sides.items():
                    times[side].append(seconds_per_call(fn, inputs, args.calls))
            hand, dx = (statistics.median(times[side]) for side in ("hand", "distrax"))
            print(
                f"{rows:>6} {name:>8} {hand * 1e6:>11.1f} µs {dx * 1e6:>9.1f} µs {dx / hand:>13.2f}"
            )


if __name__ == "__main__":
    main(tyro.cli(Args))
