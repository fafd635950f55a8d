"""envs/cpu_linalg.py: the small-matrix Cholesky and triangular solve that replace
jaxlib's batched LAPACK kernels on CPU, against NumPy on random inputs; and the one-line
warning install() gives when the private jax rules it wraps have moved."""

from __future__ import annotations

import itertools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs import cpu_linalg


def random_spd(rng, batch, n):
    m = rng.normal(size=(batch, n, n))
    return m @ np.swapaxes(m, -1, -2) + n * np.eye(n)


@pytest.mark.parametrize("n", [1, 2, 5, 9, 14, 32])
def test_cholesky_matches_numpy(n):
    rng = np.random.default_rng(n)
    a = random_spd(rng, 7, n)
    got = np.asarray(cpu_linalg.cholesky(jnp.asarray(a, jnp.float32)))
    want = np.linalg.cholesky(a)
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-4 * np.abs(want).max())
    assert np.all(np.triu(got, 1) == 0)


def test_cholesky_reads_only_the_lower_triangle():
    rng = np.random.default_rng(1)
    a = random_spd(rng, 3, 6)
    garbage_above = np.tril(a) + np.triu(rng.normal(size=a.shape), 1)
    np.testing.assert_array_equal(
        np.asarray(cpu_linalg.cholesky(jnp.asarray(garbage_above, jnp.float32))),
        np.asarray(cpu_linalg.cholesky(jnp.asarray(a, jnp.float32))),
    )


def test_cholesky_of_a_matrix_that_is_not_positive_definite_is_all_nan():
    a = np.stack([np.eye(4), -np.eye(4)]).astype(np.float32)
    got = np.asarray(cpu_linalg.cholesky(jnp.asarray(a)))
    np.testing.assert_allclose(got[0], np.eye(4))
    assert np.isnan(got[1]).all()


@pytest.mark.parametrize(
    "left_side,lower,transpose_a,unit_diagonal", list(itertools.product([True, False], repeat=4))
)
def test_triangular_solve_matches_numpy(left_side, lower, transpose_a, unit_diagonal):
    rng = np.random.default_rng(8 * left_side + 4 * lower + 2 * transpose_a + unit_diagonal)
    n, m = 9, 4
    a = np.tril(rng.normal(size=(5, n, n))) + 3 * np.eye(n)
    if not lower:
        a = np.swapaxes(a, -1, -2)
    b = rng.normal(size=(5, n, m) if left_side else (5, m, n))
    op_a = np.swapaxes(a, -1, -2) if transpose_a else a.copy()
    if unit_diagonal:
        op_a[:, np.arange(n), np.arange(n)] = 1.0
    if left_side:
        want = np.linalg.solve(op_a, b)
    else:  # X op(a) = b  <=>  op(a)ᵀ Xᵀ = bᵀ
        want = np.swapaxes(
            np.linalg.solve(np.swapaxes(op_a, -1, -2), np.swapaxes(b, -1, -2)), -1, -2
        )
    # the diagonal of `a` is ignored when unit_diagonal: put garbage there
    a_given = a.copy()
    if unit_diagonal:
        a_given[:, np.arange(n), np.arange(n)] = 7.0
    got = cpu_linalg.triangular_solve(
        jnp.asarray(a_given, jnp.float32),
        jnp.asarray(b, jnp.float32),
        left_side=left_side,
        lower=lower,
        transpose_a=transpose_a,
        conjugate_a=False,
        unit_diagonal=unit_diagonal,
    )
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-3, atol=1e-4)


def lowered_text(fn, *args) -> str:
    return jax.jit(fn).lower(*args).as_text()


def test_installed_cho_solve_avoids_lapack_for_small_matrices_and_agrees_with_numpy():
    cpu_linalg.install()
    rng = np.random.default_rng(2)
    a = random_spd(rng, 1024, 9).astype(np.float32)  # above jaxlib's split threshold
    b = rng.normal(size=(1024, 9)).astype(np.float32)

    def solve(a, b):
        return jax.vmap(lambda a, b: jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(a), b))(
            a, b
        )

    text = lowered_text(solve, a, b)
    if jax.default_backend() == "cpu":
        assert "lapack" not in text
    got = np.asarray(jax.jit(solve)(a, b))
    want = np.linalg.solve(a.astype(np.float64), b.astype(np.float64)[..., None])[..., 0]
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the override is for CPU only")
def test_installed_lowering_keeps_lapack_for_large_matrices():
    cpu_linalg.install()
    n = cpu_linalg.MAX_N + 1
    a = random_spd(np.random.default_rng(3), 2, n).astype(np.float32)
    assert "lapack" in lowered_text(jnp.linalg.cholesky, a)
    got = np.asarray(jax.jit(jnp.linalg.cholesky)(a))
    np.testing.assert_allclose(got, np.linalg.cholesky(a.astype(np.float64)), rtol=1e-3, atol=1e-3)


def test_mjx_envs_install_the_override():
    import envs.mjx_base  # noqa: F401 - importing the MJX envs installs it

    assert cpu_linalg._installed


@pytest.mark.parametrize("name", cpu_linalg.PRIVATE_NAMES)
def test_install_warns_in_one_line_when_a_private_lowering_moved(name, monkeypatch):
    from jax._src.lax import linalg as lax_linalg

    monkeypatch.delattr(lax_linalg, name)  # a jax release that moved it
    monkeypatch.setattr(cpu_linalg, "_installed", False)
    monkeypatch.setattr(cpu_linalg, "_warned", False)
    registered = []
    monkeypatch.setattr(cpu_linalg.mlir, "register_lowering", lambda *a, **k: registered.append(a))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cpu_linalg.install()
        cpu_linalg.install()  # warned once per process, not once per call
    assert [w.category for w in caught] == [RuntimeWarning]
    message = str(caught[0].message)
    assert "\n" not in message
    assert f"jax._src.lax.linalg.{name}" in message
    assert "falls back to jaxlib's LAPACK lowering" in message and "~800" in message
    assert not registered and not cpu_linalg._installed


def test_install_does_not_warn_on_the_jax_it_was_written_for(monkeypatch):
    monkeypatch.setattr(cpu_linalg, "_installed", False)  # installs again: same rules
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cpu_linalg.install()
    assert cpu_linalg._installed
