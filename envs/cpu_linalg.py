"""Small-matrix Cholesky and triangular solves on CPU without jaxlib's batched LAPACK
kernels.

MJX factorises the mass matrix (and, with the Newton solver, the constraint Hessian)
of every env with `jax.scipy.linalg.cho_factor` and `cho_solve`. On CPU, jaxlib
0.10.2 lowers these to LAPACK calls that split a large batch over the CPU thread pool
and block until the pieces finish. When such calls occupy every thread of the pool,
nothing is left to run the pieces, and the program stalls with no CPU in use. That
happens from about 800 half_cheetah matrices per call (docs/envs.md).

`install()` registers, for the CPU platform only, lowerings of `cholesky_p` and
`triangular_solve_p` that compute a batch of n × n matrices (n ≤ `MAX_N`) with
n vectorised column steps written in JAX: one fused XLA program, with no call into
LAPACK and no waiting on the pool. Larger or complex matrices keep jaxlib's own
lowering. The half_cheetah step runs as fast with it as with LAPACK at 256 envs, and
runs at 1000, where LAPACK stalled (docs/envs.md). tests/test_cpu_linalg.py checks
both functions against NumPy. A failed factorisation gives all NaN, as jaxlib's
lowering does.

`install()` wraps jaxlib's rules, which it reads from a private module of jax
(`PRIVATE_NAMES`). If a jax release moves them, `install()` registers nothing and
warns once, in one line, that MJX keeps jaxlib's LAPACK lowering and its stall.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
from jax import lax
from jax.interpreters import mlir

MAX_N = 32  # larger matrices keep LAPACK: the unrolled program would grow as n²

# jaxlib's CPU lowering rules in jax._src.lax.linalg that install() keeps for the
# matrices it does not handle; private names, which may move in any jax release
PRIVATE_NAMES = ("_cholesky_cpu_lowering", "_triangular_solve_cpu_lower")

_installed = False
_warned = False  # the fallback warning was given (once per process)


def cholesky(a):
    """Lower Cholesky factor of a batch (..., n, n) of symmetric positive definite
    matrices, column by column (left-looking). Only the lower triangle is read; the
    upper triangle of the result is zero."""
    n = a.shape[-1]
    factor = jnp.zeros_like(a)
    for j in range(n):
        column = a[..., j:, j]
        if j:
            done = factor[..., j:, :j]  # the columns already computed
            column = column - jnp.einsum("...ik,...k->...i", done, factor[..., j, :j])
        pivot = jnp.sqrt(column[..., :1])  # NaN when the matrix is not positive definite
        factor = factor.at[..., j:, j].set(column / pivot)
    failed = jnp.isnan(jnp.diagonal(factor, axis1=-2, axis2=-1)).any(-1)
    return jnp.where(failed[..., None, None], jnp.nan, factor)  # all NaN, as jaxlib gives


def triangular_solve(a, b, *, left_side, lower, transpose_a, conjugate_a, unit_diagonal):
    """X with op(a) X = b (left_side) or X op(a) = b, for a batch of triangular `a`,
    by substitution one row at a time; the arguments mean what they mean for
    `jax.lax.linalg.triangular_solve`."""
    del conjugate_a  # real matrices only (install() keeps LAPACK for complex ones)
    if transpose_a:
        a, lower = jnp.swapaxes(a, -1, -2), not lower
    if not left_side:  # X A = B  <=>  Aᵀ Xᵀ = Bᵀ
        a, lower, b = jnp.swapaxes(a, -1, -2), not lower, jnp.swapaxes(b, -1, -2)
    n = a.shape[-1]
    rows = [None] * n  # rows of X, solved from the first row (lower) or the last (upper)
    for i in range(n) if lower else range(n - 1, -1, -1):
        row = b[..., i, :]
        known = range(i) if lower else range(i + 1, n)
        if known:
            coefficients = a[..., i, known.start : known.stop]  # (..., k)
            solved = jnp.stack([rows[k] for k in known], axis=-2)  # (..., k, m)
            row = row - jnp.einsum("...k,...km->...m", coefficients, solved)
        rows[i] = row if unit_diagonal else row / a[..., i, i, None]
    x = jnp.stack(rows, axis=-2)
    return x if left_side else jnp.swapaxes(x, -1, -2)


def _small_real(aval) -> bool:
    return aval.shape[-1] <= MAX_N and jnp.issubdtype(aval.dtype, jnp.floating)


def install() -> None:
    """Register the CPU lowerings (once per process; later calls do nothing). If jax's
    private rules are missing, register nothing and warn (once) in one line."""
    global _installed, _warned
    if _installed:
        return
    from jax._src.lax import linalg as lax_linalg  # the rules being replaced

    missing = [name for name in PRIVATE_NAMES if not hasattr(lax_linalg, name)]
    if missing:  # a jax whose CPU lowerings moved: keep them
        if not _warned:
            _warned = True
            names = ", ".join(f"jax._src.lax.linalg.{name}" for name in missing)
            warnings.warn(
                f"envs/cpu_linalg.py: {names} not found in jax {jax.__version__}; MJX falls "
                "back to jaxlib's LAPACK lowering, which can stall above ~800 batched "
                "matrices on CPU",
                RuntimeWarning,
                stacklevel=2,
            )
        return
    lapack_cholesky = getattr(lax_linalg, PRIVATE_NAMES[0])
    lapack_solve = getattr(lax_linalg, PRIVATE_NAMES[1])
    unrolled_cholesky = mlir.lower_fun(cholesky, multiple_results=False)
    unrolled_solve = mlir.lower_fun(triangular_solve, multiple_results=False)

    def cholesky_rule(ctx, operand):
        if _small_real(ctx.avals_in[0]):
            return unrolled_cholesky(ctx, operand)
        return lapack_cholesky(ctx, operand)

    def solve_rule(ctx, a, b, **params):
        if _small_real(ctx.avals_in[0]):  # conjugating a real matrix changes nothing
            return unrolled_solve(ctx, a, b, **params)
        return lapack_solve(ctx, a, b, **params)

    mlir.register_lowering(lax.linalg.cholesky_p, cholesky_rule, platform="cpu")
    mlir.register_lowering(lax.linalg.triangular_solve_p, solve_rule, platform="cpu")
    _installed = True
