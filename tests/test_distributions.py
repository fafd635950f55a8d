"""distrax (a declared dependency) against the hand-written policy distributions of the
scripts, on random inputs: the tanh-squashed diagonal Gaussian of algos/hipi_rl.py
(`sample_action`, `action_log_prob`), the diagonal Gaussian and the categorical of
algos/hindsight_em.py (`log_prob`, and the draws of its `sample_action`), and the
relabeling draw of algos/hipi_rl.py (`relabel_inverse_rl`).

Each distrax expression here is the one that would replace the hand-written code; the
draws are equal bit for bit, the log-probabilities to the tolerances explained below.
benchmarks/distributions.py times both."""

from __future__ import annotations

import math

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import load_algo

hipi_rl = load_algo("hipi_rl")
em = load_algo("hindsight_em")

SHAPES = [(7, 1), (64, 3), (32, 4, 6)]  # (rows, action dim) and (rows, K tasks, action dim)
SEEDS = [0, 1]
ACTION_CLIP = 1.0 - 1e-6  # action_log_prob clips stored actions to this before atanh


def squashed_gaussian(mean, log_std):
    return distrax.Transformed(
        distrax.MultivariateNormalDiag(mean, jnp.exp(log_std)), distrax.Block(distrax.Tanh(), 1)
    )


@jax.jit
def distrax_sample(key, mean, log_std):
    return squashed_gaussian(mean, log_std).sample_and_log_prob(seed=key)


@jax.jit
def distrax_action_log_prob(mean, log_std, action):
    clipped = jnp.clip(action, -ACTION_CLIP, ACTION_CLIP)
    return squashed_gaussian(mean, log_std).log_prob(clipped)


def policy_outputs(seed, shape):
    """Means and log-stds over the range hipi_rl's actor produces (log-std clipped to
    [-5, 2]), so std ranges from 0.007 to 7.4 and |mean| / std reaches several hundred."""
    mean_key, std_key, key = jax.random.split(jax.random.key(seed), 3)
    mean = 2.0 * jax.random.normal(mean_key, shape)
    log_std = jax.random.uniform(std_key, shape, minval=-5.0, maxval=2.0)
    return mean, log_std, key


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", SEEDS)
def test_sample_and_log_prob_matches_sample_action(seed, shape):
    mean, log_std, key = policy_outputs(seed, shape)
    action, log_prob = jax.jit(hipi_rl.sample_action)(key, mean, log_std)
    got_action, got_log_prob = distrax_sample(key, mean, log_std)
    # the same normal draw, scaled, shifted and squashed by the same operations
    np.testing.assert_array_equal(np.asarray(got_action), np.asarray(action))
    # Different float programs. The hand-written one recomputes z = (u - mean) / std from
    # the shifted draw u = mean + std * eps, which cancels when std << |mean| and loses
    # about |mean| / std float32 ulps of z; distrax uses eps itself. Against a float64
    # reference distrax stays within ~1e-5 and the hand-written one within ~1e-4 (values
    # up to ~60 in magnitude, 256 x 4 rows); 1e-3 leaves room for other draws over this
    # input range. Measured here: at most 2.3e-5 apart.
    np.testing.assert_allclose(np.asarray(got_log_prob), np.asarray(log_prob), rtol=0, atol=1e-3)


def stored_actions(seed, shape):
    """Actions as the replay buffer holds them: samples of the policy (in float32 tanh
    gives exactly ±1 for |u| > ~9, which these inputs reach), and actions close to ±1,
    1 - |a| from 1e-6 to 1e-2."""
    mean, log_std, key = policy_outputs(seed, shape)
    sample_key, sign_key, gap_key, pick_key = jax.random.split(key, 4)
    sampled, _ = hipi_rl.sample_action(sample_key, mean, log_std)
    sign = jnp.where(jax.random.bernoulli(sign_key, 0.5, shape), 1.0, -1.0)
    near_one = sign * (1.0 - 10.0 ** jax.random.uniform(gap_key, shape, minval=-6, maxval=-2))
    action = jnp.where(jax.random.bernoulli(pick_key, 0.5, shape), sampled, near_one)
    return mean, log_std, action


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", SEEDS)
def test_log_prob_of_clipped_stored_action_matches_action_log_prob(seed, shape):
    mean, log_std, action = stored_actions(seed, shape)
    want = np.asarray(jax.jit(hipi_rl.action_log_prob)(mean, log_std, action))
    got = np.asarray(distrax_action_log_prob(mean, log_std, action))
    assert np.isfinite(want).all() and np.isfinite(got).all()
    # Both compute atanh of the same clipped action and the same log-det formula,
    # 2 (log 2 - u - softplus(-2u)), in different orders. Near |a| -> 1 the pre-tanh value
    # u = atanh(a) reaches 7.25 (at the clip), so with std down to e^-5 the Gaussian term
    # -z²/2 reaches -1e6 and a few float32 ulps of it are ~0.1 in absolute terms: only a
    # relative tolerance is meaningful. Measured: at most 5% of this tolerance (0.25 apart
    # on log-probs of -1e6).
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_exactly_saturated_action_needs_the_clip():
    """A stored action of exactly ±1: the script clips it before atanh and gets a finite
    log-prob; distrax's Tanh inverts it to ±inf and the log-prob is not finite."""
    mean, log_std = jnp.zeros((2, 3)), jnp.zeros((2, 3))
    action = jnp.array([[1.0, 0.5, -0.2], [-1.0, 0.0, 0.3]])
    want = np.asarray(hipi_rl.action_log_prob(mean, log_std, action))
    assert np.isfinite(want).all()
    assert not np.isfinite(np.asarray(squashed_gaussian(mean, log_std).log_prob(action))).any()
    got = np.asarray(distrax_action_log_prob(mean, log_std, action))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("action_dim", [1, 3, 6])
@pytest.mark.parametrize("seed", SEEDS)
def test_diagonal_gaussian_matches_hindsight_em(seed, action_dim):
    """hindsight_em's continuous policy: a tanh-bounded mean, a global log-std floored at
    log(min_std), an unsquashed Gaussian over actions clipped to [-1, 1]."""
    min_std = 0.1
    mean_key, std_key, noise_key, draw_key = jax.random.split(jax.random.key(seed), 4)
    mean = jnp.tanh(jax.random.normal(mean_key, (64, action_dim)))
    log_std = jax.random.uniform(std_key, (action_dim,), minval=-4.0, maxval=1.0)
    action = jnp.clip(mean + jax.random.normal(noise_key, mean.shape), -1.0, 1.0)
    std = jnp.exp(jnp.maximum(log_std, math.log(min_std)))
    policy = distrax.MultivariateNormalDiag(mean, std)  # log_std (A,) broadcasts over rows
    want = np.asarray(em.log_prob((mean, log_std), action, False, min_std))
    # Different float programs on z = (a - mean) / std with |z| <= 20 (std >= 0.1):
    # float32 rounding of terms z²/2 up to ~200, measured at most 3e-5 apart.
    np.testing.assert_allclose(np.asarray(policy.log_prob(action)), want, rtol=1e-5, atol=1e-4)
    # hindsight_em's sample_action draws mean + std * normal(policy_key, mean.shape)
    drawn = mean + std * jax.random.normal(draw_key, mean.shape)
    np.testing.assert_array_equal(np.asarray(policy.sample(seed=draw_key)), np.asarray(drawn))


@pytest.mark.parametrize("num_actions", [2, 5, 16])
@pytest.mark.parametrize("seed", SEEDS)
def test_categorical_matches_hindsight_em(seed, num_actions):
    logits_key, action_key, draw_key = jax.random.split(jax.random.key(seed), 3)
    logits = 3.0 * jax.random.normal(logits_key, (128, num_actions))
    action = jax.random.randint(action_key, (128,), 0, num_actions)
    policy = distrax.Categorical(logits=logits)
    want = np.asarray(em.log_prob(logits, action, True, 0.1))
    # both take log_softmax of the logits; distrax then sums them against a one-hot
    # vector, which adds exact zeros: equal up to rounding inside log_softmax
    np.testing.assert_allclose(np.asarray(policy.log_prob(action)), want, rtol=1e-6, atol=1e-6)
    # hindsight_em's sample_action draws jax.random.categorical(policy_key, logits).
    # distrax draws from log_softmax(logits), the same Gumbel noise shifted by a constant
    # per row: the same argmax unless rounding breaks a near tie (none in these draws).
    drawn = jax.random.categorical(draw_key, logits)
    sampled = policy.sample(seed=draw_key)
    assert sampled.dtype == drawn.dtype
    np.testing.assert_array_equal(np.asarray(sampled), np.asarray(drawn))


@pytest.mark.parametrize("seed", SEEDS)
def test_categorical_matches_the_relabeling_draw(seed):
    logits_key, draw_key = jax.random.split(jax.random.key(seed))
    logits = 5.0 * jax.random.normal(logits_key, (64, 16))  # (rows, candidate tasks)
    chosen, log_q = hipi_rl.relabel_inverse_rl(draw_key, logits, True)
    sampled = distrax.Categorical(logits=log_q).sample(seed=draw_key)
    np.testing.assert_array_equal(np.asarray(sampled), np.asarray(chosen))
