"""The policy distributions of the scripts (distrax) against float64 NumPy references on
random inputs: the tanh-squashed diagonal Gaussian of algos/hipi_rl.py (`sample_action`,
`action_log_prob`) and the Gaussian and categorical of algos/hindsight_em.py
(`policy_distribution`, `log_prob`). benchmarks/distributions.py times the squashed
Gaussian against its closed form written in jax.numpy."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import load_algo

hipi_rl = load_algo("hipi_rl")
em = load_algo("hindsight_em")

SHAPES = [(7, 1), (64, 3), (32, 4, 6)]  # (rows, action dim) and (rows, K tasks, action dim)
SEEDS = [0, 1]


def gaussian_log_prob(x, mean, std):
    """float64 log N(x; mean, diag(std²)), summed over the last axis."""
    z = (x - mean) / std
    return np.sum(-0.5 * z**2 - np.log(std) - 0.5 * math.log(2 * math.pi), axis=-1)


def squashed_log_prob(u, mean, std):
    """float64 log π(tanh(u)) = log N(u) − Σ log(1 − tanh²u), the log-det written as
    2 (log 2 − u − softplus(−2u)) so that it stays finite for large |u|."""
    log_det = 2.0 * (math.log(2.0) - u - np.logaddexp(0.0, -2.0 * u))
    return gaussian_log_prob(u, mean, std) - np.sum(log_det, axis=-1)


def policy_outputs(seed, shape):
    """Means and log-stds over the range hipi_rl's actor produces (log-std clipped to
    [-5, 2]): std from 0.007 to 7.4, |mean| / std up to several hundred."""
    mean_key, std_key, key = jax.random.split(jax.random.key(seed), 3)
    mean = 2.0 * jax.random.normal(mean_key, shape)
    log_std = jax.random.uniform(std_key, shape, minval=-5.0, maxval=2.0)
    return mean, log_std, key


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", SEEDS)
def test_sample_action_is_the_squashed_gaussian(seed, shape):
    mean, log_std, key = policy_outputs(seed, shape)
    action, log_prob = jax.jit(hipi_rl.sample_action)(key, mean, log_std)
    mean64, std64 = np.float64(mean), np.exp(np.float64(log_std))
    u = mean64 + std64 * np.float64(jax.random.normal(key, shape))  # the pre-tanh draw
    # float32 tanh of the same draw: a few ulps of values in [-1, 1]
    np.testing.assert_allclose(np.asarray(action), np.tanh(u), rtol=0, atol=1e-6)
    # log π from the pre-tanh draw, values up to ~60 in magnitude; float32 rounding of
    # the Gaussian and log-det terms, measured ~1e-5 apart from float64
    np.testing.assert_allclose(np.asarray(log_prob), squashed_log_prob(u, mean64, std64), atol=1e-3)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", SEEDS)
def test_action_log_prob_of_stored_actions(seed, shape):
    """Actions as the replay buffer holds them: policy samples (float32 tanh gives exactly
    ±1 for |u| > ~9, which these inputs reach) and actions 1e-6 to 1e-2 from ±1."""
    mean, log_std, key = policy_outputs(seed, shape)
    sample_key, sign_key, gap_key, pick_key = jax.random.split(key, 4)
    sampled, _ = hipi_rl.sample_action(sample_key, mean, log_std)
    sign = jnp.where(jax.random.bernoulli(sign_key, 0.5, shape), 1.0, -1.0)
    near_one = sign * (1.0 - 10.0 ** jax.random.uniform(gap_key, shape, minval=-6, maxval=-2))
    action = jnp.where(jax.random.bernoulli(pick_key, 0.5, shape), sampled, near_one)
    got = np.asarray(jax.jit(hipi_rl.action_log_prob)(mean, log_std, action))
    # the same float32 clip as the script (float32 steps near 1 are 6e-8, and atanh
    # there has slope 5e5: the clip must be the same number), then float64
    clipped = np.float64(np.asarray(jnp.clip(action, -1.0 + 1e-6, 1.0 - 1e-6)))
    want = squashed_log_prob(np.arctanh(clipped), np.float64(mean), np.exp(np.float64(log_std)))
    assert np.isfinite(got).all()
    # Near |a| -> 1, u = atanh(a) reaches 7.25 and with std down to e^-5 the Gaussian term
    # reaches -1e6, which float32 holds to a few 1e-7 relative; float32 atanh near 1
    # adds a few ulps of u. A relative tolerance is the meaningful one.
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3)


def test_an_exactly_saturated_action_has_a_finite_log_prob():
    mean, log_std = jnp.zeros((2, 3)), jnp.zeros((2, 3))
    action = jnp.array([[1.0, 0.5, -0.2], [-1.0, 0.0, 0.3]])
    assert np.isfinite(np.asarray(hipi_rl.action_log_prob(mean, log_std, action))).all()


@pytest.mark.parametrize("action_dim", [1, 3, 6])
@pytest.mark.parametrize("seed", SEEDS)
def test_hindsight_em_gaussian(seed, action_dim):
    """A tanh-bounded mean, a global log-std floored at log(min_std), no squashing."""
    min_std = 0.1
    mean_key, std_key, noise_key, draw_key = jax.random.split(jax.random.key(seed), 4)
    mean = jnp.tanh(jax.random.normal(mean_key, (64, action_dim)))
    log_std = jax.random.uniform(std_key, (action_dim,), minval=-4.0, maxval=1.0)
    action = jnp.clip(mean + jax.random.normal(noise_key, mean.shape), -1.0, 1.0)
    std64 = np.exp(np.maximum(np.float64(log_std), math.log(min_std)))
    want = gaussian_log_prob(np.float64(action), np.float64(mean), std64)
    got = np.asarray(em.log_prob((mean, log_std), action, False, min_std))
    # |z| <= 20 (std >= 0.1): float32 rounding of z²/2 up to ~200
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    drawn = em.policy_distribution((mean, log_std), False, min_std).sample(seed=draw_key)
    expected = np.float64(mean) + std64 * np.float64(jax.random.normal(draw_key, mean.shape))
    np.testing.assert_allclose(np.asarray(drawn), expected, rtol=0, atol=1e-5)  # |x| < 30


@pytest.mark.parametrize("num_actions", [2, 5, 16])
def test_hindsight_em_categorical(num_actions):
    logits_key, action_key, draw_key = jax.random.split(jax.random.key(num_actions), 3)
    logits = 3.0 * jax.random.normal(logits_key, (128, num_actions))
    action = jax.random.randint(action_key, (128,), 0, num_actions)
    log_softmax = np.float64(logits) - np.logaddexp.reduce(np.float64(logits), axis=1)[:, None]
    want = log_softmax[np.arange(128), np.asarray(action)]
    got = np.asarray(em.log_prob(logits, action, True, 0.1))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-5)  # float32 log_softmax
    # draws follow softmax(logits): 4000 draws of row 0, each frequency within 5 sigma
    policy = em.policy_distribution(logits[:1].repeat(4000, axis=0), True, 0.1)
    counts = np.bincount(np.asarray(policy.sample(seed=draw_key)), minlength=num_actions)
    p = np.exp(log_softmax[0])
    sigma = np.sqrt(4000 * p * (1 - p))
    assert np.all(np.abs(counts - 4000 * p) <= 5 * sigma + 1), (counts, 4000 * p)
