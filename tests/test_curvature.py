"""The curvature estimator: Hessian-vector products, Hutchinson's diagonal
and the binned slope of log curvature against log gradient.

Checked against exact answers: an axis-aligned quadratic (diag H = h, and
one probe is exact), a rotated quadratic (diag H = sum_k R_ik^2 h_k), a
small MLP on digits in float64 (the diagonal of the full Hessian from
torch.func.hessian, and Hutchinson within five standard errors computed
from that Hessian), and the power laws sum |x|^k, where the curvature
grows like |g|^((k-2)/(k-1)) exactly.
"""

import math

import pytest
import torch
from torch.func import hessian

from magcore.problems import make_problem
from magcore.sweeps.curvature import (
    binned_slope, curvature_slopes, exact_hessian_diagonal, gradient,
    hessian_vector_product, hutchinson_diagonal, rademacher_like)


def _full(problem):
    return problem.sample(torch.Generator().manual_seed(0), None)


def test_rademacher_entries_are_signs():
    params = {"a": torch.zeros(50, 3, dtype=torch.float64)}
    z = rademacher_like(params, torch.Generator().manual_seed(0))["a"]
    assert set(z.unique().tolist()) == {-1.0, 1.0}
    assert z.dtype == torch.float64 and z.shape == (50, 3)


def test_axis_aligned_quadratic_one_probe_is_exact():
    prob = make_problem("quadratic", dim=7, kappa=50.0)
    params = prob.init(0)
    batch = _full(prob)
    est = hutchinson_diagonal(prob, params, batch, n_probes=1, seed=3)
    torch.testing.assert_close(est["theta"], prob.h.double(), rtol=1e-12,
                               atol=1e-12)


def test_rotated_quadratic_known_diagonal():
    prob = make_problem("quadratic", dim=6, kappa=20.0, rotate=True)
    params = prob.init(1)
    batch = _full(prob)
    rot, h = prob.rotation.double(), prob.h.double()
    full_h = rot @ torch.diag(h) @ rot.T
    truth = torch.diagonal(full_h)

    exact = exact_hessian_diagonal(prob, params, batch)["theta"]
    torch.testing.assert_close(exact, truth, rtol=1e-10, atol=1e-12)

    v = {"theta": torch.linspace(-1, 1, 6, dtype=torch.float64)}
    hv = hessian_vector_product(prob, params, batch, v)["theta"]
    torch.testing.assert_close(hv, full_h @ v["theta"], rtol=1e-10,
                               atol=1e-12)

    n = 4000
    est = hutchinson_diagonal(prob, params, batch, n_probes=n, seed=0)
    off = (full_h ** 2).sum(1) - truth ** 2
    stderr = (off / n).sqrt()
    assert bool((est["theta"] - truth).abs().le(5 * stderr).all())
    # and the probes are not trivially exact here (off-diagonal mass)
    assert bool(off.gt(0).all())


def test_small_mlp_against_full_hessian():
    prob = make_problem("digits-mlp", hidden=(3,), dtype="float64")
    params = prob.init(0)
    batch = prob.sample(torch.Generator().manual_seed(1), 24)
    names = list(params)
    shapes = [params[k].shape for k in names]
    sizes = [params[k].numel() for k in names]

    def flat_loss(vec):
        parts = torch.split(vec, sizes)
        return prob.loss({k: p.reshape(s) for k, p, s in
                          zip(names, parts, shapes)}, batch)

    flat = torch.cat([params[k].reshape(-1) for k in names])
    full_h = hessian(flat_loss)(flat)
    truth = torch.diagonal(full_h)

    exact = exact_hessian_diagonal(prob, params, batch)
    exact_flat = torch.cat([exact[k].reshape(-1) for k in names])
    torch.testing.assert_close(exact_flat, truth, rtol=1e-8, atol=1e-10)

    n = 600
    est = hutchinson_diagonal(prob, params, batch, n_probes=n, seed=2,
                              chunk=50)
    est_flat = torch.cat([est[k].reshape(-1) for k in names])
    stderr = (((full_h ** 2).sum(1) - truth ** 2).clamp_min(0) / n).sqrt()
    assert bool((est_flat - truth).abs().le(5 * stderr + 1e-12).all())

    g = gradient(prob, params, batch)
    g_flat = torch.cat([g[k].reshape(-1) for k in names])
    ref = torch.func.grad(flat_loss)(flat)
    torch.testing.assert_close(g_flat, ref, rtol=1e-10, atol=1e-12)


def test_hutchinson_is_seeded_and_chunk_free():
    prob = make_problem("quadratic", dim=5, rotate=True)
    params, batch = prob.init(0), _full(prob)
    a = hutchinson_diagonal(prob, params, batch, n_probes=10, seed=4,
                            chunk=3)
    b = hutchinson_diagonal(prob, params, batch, n_probes=10, seed=4,
                            chunk=10)
    c = hutchinson_diagonal(prob, params, batch, n_probes=10, seed=5)
    torch.testing.assert_close(a["theta"], b["theta"])
    assert not torch.allclose(a["theta"], c["theta"])


def test_binned_slope_recovers_a_power_law():
    g = torch.logspace(-4, 0, 500, dtype=torch.float64)
    fit = binned_slope(g, 3.0 * g ** 0.7, n_bins=10)
    assert math.isclose(fit.alpha, 0.7, rel_tol=1e-3)
    assert fit.n_used == 10 and 480 <= sum(fit.counts) <= 500
    flat = binned_slope(g, torch.full_like(g, 2.0))
    assert abs(flat.alpha) < 1e-12
    assert math.isclose(flat.intercept, math.log(2.0), rel_tol=1e-12)


def test_binned_slope_noise_averages_inside_bins():
    gen = torch.Generator().manual_seed(0)
    g = torch.logspace(-3, 0, 20000, dtype=torch.float64)
    truth = g ** 0.5
    noisy = truth + 0.5 * truth.mean() * torch.randn(
        g.shape, generator=gen, dtype=torch.float64)
    fit = binned_slope(g, noisy, n_bins=6)
    assert abs(fit.alpha - 0.5) < 0.1


def test_binned_slope_drops_zero_gradients_and_bad_bins():
    g = torch.tensor([0.0, 0.0, 1e-3, 1e-2, 1e-1, 1.0, 10.0],
                     dtype=torch.float64)
    h = torch.tensor([5.0, 5.0, -1.0, 1e-2, 1e-1, 1.0, 10.0],
                     dtype=torch.float64)
    fit = binned_slope(g, h, n_bins=5, trim=0.0)
    assert sum(fit.counts) == 5
    assert fit.n_used == 4
    assert math.isclose(fit.alpha, 1.0, rel_tol=1e-12)
    too_few = binned_slope(g[:4], h[:4], n_bins=3)
    assert math.isnan(too_few.alpha)


@pytest.mark.parametrize("k", [3.0, 4.0])
def test_power_law_slope_is_k_minus_2_over_k_minus_1(k):
    prob = make_problem("power-law", dim=400, k=k, kappa=1.0)
    params = prob.init(0)
    fits = curvature_slopes(prob, params, _full(prob), n_probes=1,
                            n_bins=20)
    # within a bin, the mean of h is not h at the mean of log|g|: a
    # small bias, kept small by narrow bins
    assert abs(fits["all"].alpha - (k - 2) / (k - 1)) < 0.01
    assert math.isclose(fits["theta"].alpha, fits["all"].alpha,
                        rel_tol=1e-12)


def test_bad_arguments_raise_value_errors():
    prob = make_problem("quadratic", dim=3)
    params, batch = prob.init(0), _full(prob)
    with pytest.raises(ValueError, match="n_probes"):
        hutchinson_diagonal(prob, params, batch, n_probes=0)
    with pytest.raises(ValueError, match="chunk"):
        hutchinson_diagonal(prob, params, batch, chunk=0)
    with pytest.raises(ValueError, match="vec"):
        hessian_vector_product(prob, params, batch,
                               {"theta": torch.zeros(4)})
    with pytest.raises(ValueError, match="n_bins"):
        binned_slope(torch.ones(5), torch.ones(5), n_bins=2)
    with pytest.raises(ValueError, match="h_diag"):
        binned_slope(torch.ones(5), torch.ones(4))
    with pytest.raises(ValueError, match="trim"):
        binned_slope(torch.ones(5), torch.ones(5), trim=0.5)
