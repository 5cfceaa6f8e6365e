"""The small-batch law of the best sign-power learning rate, against the
exact one-step model and against the SGD and sign special cases."""

import math

import numpy as np
import pytest

from magcore.sweeps.batch_model import (optimal_lr, sgd_noise_scale,
                                        sgd_optimal_lr,
                                        sign_power_law_coefficients,
                                        sign_power_lr_law,
                                        sign_power_noise_scale,
                                        update_moments)

RNG_SEED = 1


def _model(d=6, seed=RNG_SEED, aligned=0.4):
    """A gradient, a Hessian with off-diagonal curvature along sign(G)
    (weight ``aligned``), and unequal noise."""
    rng = np.random.default_rng(seed)
    grad = rng.normal(size=d) * 0.3
    signs = np.sign(grad)
    root = rng.normal(size=(d, d)) / math.sqrt(d)
    hessian = root @ root.T + np.eye(d) + aligned * np.outer(signs, signs)
    std = rng.uniform(0.5, 2.0, size=d)
    return grad, hessian, std


def test_p1_is_the_sgd_law():
    grad, hessian, std = _model()
    batches = np.geomspace(0.1, 1e5, 12)
    law = sign_power_lr_law(grad, hessian, std, 1.0, batches)
    exact, _ = sgd_optimal_lr(grad, hessian, np.diag(std ** 2), batches)
    np.testing.assert_allclose(law, exact, rtol=1e-12)
    assert sign_power_noise_scale(grad, hessian, std, 1.0) == pytest.approx(
        sgd_noise_scale(grad, hessian, np.diag(std ** 2)), rel=1e-12)


def test_p0_has_the_surge_form():
    grad, hessian, std = _model()
    a = grad / std
    off = hessian - np.diag(np.diag(hessian))
    b_noise = sign_power_noise_scale(grad, hessian, std, 0.0)
    assert b_noise == pytest.approx(
        math.pi * np.trace(hessian) / (2 * a @ off @ a), rel=1e-12)
    batches = np.geomspace(1e-3, 1e3, 13) * b_noise
    law = sign_power_lr_law(grad, hessian, std, 0.0, batches)
    peak = sign_power_lr_law(grad, hessian, std, 0.0, b_noise)
    ratio = batches / b_noise
    np.testing.assert_allclose(
        law, 2 * peak / (np.sqrt(1 / ratio) + np.sqrt(ratio)), rtol=1e-12)


@pytest.mark.parametrize("p", [0.0, 0.25, 0.5, 0.8])
def test_peak_position(p):
    grad, hessian, std = _model()
    b_noise = sign_power_noise_scale(grad, hessian, std, p)
    b_peak = b_noise * (1 + p) / (1 - p)
    at_peak = sign_power_lr_law(grad, hessian, std, p, b_peak)
    for factor in [0.97, 1.03, 0.5, 2.0]:
        assert sign_power_lr_law(grad, hessian, std, p,
                                 factor * b_peak) < at_peak
    # Slopes of the two sides on log-log axes.
    for b, slope in [(1e-6 * b_noise, (1 + p) / 2),
                     (1e6 * b_noise, -(1 - p) / 2)]:
        lo, hi = sign_power_lr_law(grad, hessian, std, p, [b, 1.01 * b])
        assert math.log(hi / lo) / math.log(1.01) == pytest.approx(
            slope, abs=1e-4)


@pytest.mark.parametrize("p", [0.0, 0.3, 0.5, 1.0, 2.0])
def test_the_law_is_the_small_batch_limit(p):
    grad, hessian, std = _model()
    b_noise = sign_power_noise_scale(grad, hessian, std, p)
    errors = []
    for b in [1e-4 * b_noise, 1e-5 * b_noise]:
        exact, _ = optimal_lr(grad, hessian, std, p, b)
        law = sign_power_lr_law(grad, hessian, std, p, b)
        errors.append(abs(law / exact - 1))
    # The relative error is O(B): it shrinks tenfold with B.
    assert errors[0] < 1e-3
    assert errors[1] < 1e-12 or errors[0] / errors[1] == pytest.approx(
        10, rel=0.05)


@pytest.mark.parametrize("p", [0.0, 0.5, 1.5])
def test_coefficients_are_the_expansion_of_the_moments(p):
    """C and D are the first two coefficients of B^p E[u^T H u]."""
    grad, hessian, std = _model()
    b_noise = sign_power_noise_scale(grad, hessian, std, p)
    law1 = sign_power_lr_law(grad, hessian, std, p, 1.0)

    def scaled_quadratic(b):
        m1, m2 = update_moments(grad, std, p, b)
        diag = np.diag(hessian)
        return b ** p * (diag @ (m2 - m1 ** 2) + m1 @ hessian @ m1)

    b = 1e-5 * b_noise
    c0 = scaled_quadratic(1e-12)
    slope = (scaled_quadratic(b) - c0) / b
    # The law at B = 1 is A / (C + D); C / D = B_noise.
    d_coef = c0 / b_noise
    assert slope == pytest.approx(d_coef, rel=1e-3)
    m1, _ = update_moments(grad, std, p, 1e-8)
    signal = (m1 @ grad) * 1e-8 ** (-(1 - p) / 2)
    assert law1 == pytest.approx(signal / (c0 + d_coef), rel=1e-6)
    np.testing.assert_allclose(
        sign_power_law_coefficients(grad, hessian, std, p),
        [signal, c0, d_coef], rtol=1e-3)


def test_diagonal_sign_has_no_crossover():
    grad, _, std = _model()
    hessian = np.diag(np.arange(1.0, grad.size + 1))
    assert sign_power_noise_scale(grad, hessian, std, 0.0) == math.inf
    # Anti-aligned off-diagonal curvature: no crossover either.
    signs = np.sign(grad)
    anti = 3 * np.eye(grad.size) - 0.4 * np.outer(signs, signs)
    anti += 0.4 * np.diag(np.diag(np.outer(signs, signs)))
    assert sign_power_noise_scale(grad, anti, std, 0.0) == math.inf


def test_bad_input_is_refused():
    grad, hessian, std = _model()
    with pytest.raises(ValueError, match="std"):
        sign_power_noise_scale(grad, hessian, 0.0, 0.5)
    with pytest.raises(ValueError, match="p"):
        sign_power_lr_law(grad, hessian, std, -1.0, 4.0)
    with pytest.raises(ValueError, match="batch"):
        sign_power_lr_law(grad, hessian, std, 0.5, 0.0)
    with pytest.raises(ValueError, match="hessian"):
        sign_power_lr_law(grad, -hessian, std, 0.5, 4.0)
