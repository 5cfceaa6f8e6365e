"""The sign measures of magcore.sweeps.diagnostics."""

import math

import numpy as np
import pytest
import torch

import magcore
from magcore.sweeps.diagnostics import (cosine_similarity, cosine_to_sign,
                                        density, flatten,
                                        magnitude_percentiles,
                                        sign_agreement, update_diagnostics)


def test_flatten_concatenates_in_order_without_touching_inputs():
    a = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    b = torch.tensor([5.0], dtype=torch.float16)
    out = flatten([a, b])
    assert out.dtype == torch.float64
    assert out.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    out[0] = 100.0
    assert a[0, 0] == 1.0
    assert flatten(a).tolist() == [1.0, 2.0, 3.0, 4.0]
    for bad in ([], [a, 3.0], 5, [torch.ones(2, dtype=torch.cfloat)]):
        with pytest.raises(ValueError, match="tensors"):
            flatten(bad)


def test_sign_agreement_counts_and_zero_handling():
    u = torch.tensor([1.0, -2.0, 0.0, 3.0, -1.0])
    r = torch.tensor([2.0, -1.0, 5.0, -3.0, 0.0])
    # nonzero pairs: coords 0, 1, 3 -> two agree
    assert sign_agreement(u, r) == pytest.approx(2 / 3)
    # all coords: 0, 1 agree; 2 (0 vs +) and 4 (- vs 0) and 3 disagree
    assert sign_agreement(u, r, exclude_zero=False) == pytest.approx(2 / 5)
    assert sign_agreement(torch.zeros(3), torch.zeros(3),
                          exclude_zero=False) == 1.0
    with pytest.raises(ValueError, match="zero"):
        sign_agreement(torch.zeros(3), torch.ones(3))
    with pytest.raises(ValueError, match="reference"):
        sign_agreement(torch.ones(3), torch.ones(4))
    assert sign_agreement(-u, u) == 0.0


def test_sign_agreement_on_lists_of_tensors():
    us = [torch.ones(2, 2), -torch.ones(3)]
    rs = [torch.ones(2, 2), torch.ones(3)]
    assert sign_agreement(us, rs) == pytest.approx(4 / 7)


def test_cosines_and_density_match_their_formulas():
    gen = torch.Generator().manual_seed(0)
    u = torch.randn(200, generator=gen, dtype=torch.float64)
    r = torch.randn(200, generator=gen, dtype=torch.float64)
    expected = (u @ r / (u.norm() * r.norm())).item()
    assert cosine_similarity(u, r) == pytest.approx(expected, abs=1e-12)
    s = torch.sign(r)
    assert cosine_to_sign(u, r) == pytest.approx(
        (u @ s / (u.norm() * s.norm())).item(), abs=1e-12)
    phi = (u.abs().sum() ** 2 / (200 * (u ** 2).sum())).item()
    assert density(u) == pytest.approx(phi, abs=1e-12)
    # sign agreement of u with itself makes cos(u, sign u)^2 = density
    assert cosine_to_sign(u, u) ** 2 == pytest.approx(density(u))
    # the extreme values of the density
    assert density(torch.ones(10)) == pytest.approx(1.0)
    assert density(torch.eye(10)[3]) == pytest.approx(0.1)
    assert cosine_to_sign(3.0 * torch.sign(r), r) == pytest.approx(1.0)
    for fn in (lambda: cosine_similarity(torch.zeros(3), torch.ones(3)),
               lambda: density(torch.zeros(4))):
        with pytest.raises(ValueError, match="zero"):
            fn()


def test_percentiles_agree_with_numpy():
    gen = torch.Generator().manual_seed(1)
    u = [torch.randn(30, 7, generator=gen), torch.randn(11, generator=gen)]
    flat = flatten(u).numpy()
    qs = (0, 5, 37.5, 50, 95, 100)
    got = magnitude_percentiles(u, qs, scale=0.5).numpy()
    np.testing.assert_allclose(got, np.percentile(np.abs(flat) / 0.5, qs),
                               rtol=1e-12)
    for kwargs, name in [(dict(percentiles=(101,)), "percentiles"),
                         (dict(percentiles=()), "percentiles"),
                         (dict(scale=0.0), "scale"),
                         (dict(scale=math.inf), "scale"),
                         (dict(scale="x"), "scale")]:
        with pytest.raises(ValueError, match=name):
            magnitude_percentiles(u, **kwargs)


def _one_step(opt_factory, grad):
    theta = torch.nn.Parameter(torch.zeros_like(grad))
    opt = opt_factory([theta])
    theta.grad = grad.clone()
    opt.step()
    return -theta.detach(), opt.state[theta]


def test_sign_descent_is_exactly_sign_like():
    gen = torch.Generator().manual_seed(2)
    g = torch.randn(500, generator=gen, dtype=torch.float64)
    step, _ = _one_step(lambda ps: magcore.SignSGD(ps, lr=0.3), g)
    out = update_diagnostics(step, g, lr=0.3)
    assert out["agree_grad"] == 1.0
    assert out["cos_sign_grad"] == pytest.approx(1.0, abs=1e-12)
    assert out["density"] == pytest.approx(1.0, abs=1e-12)
    for q in (5, 25, 50, 75, 95):
        assert out[f"p{q}"] == pytest.approx(1.0, abs=1e-12)


def test_sgd_step_measures_the_gradient_itself():
    gen = torch.Generator().manual_seed(3)
    g = torch.randn(1000, generator=gen, dtype=torch.float64)
    step, _ = _one_step(lambda ps: magcore.SGD(ps, lr=0.1), g)
    out = update_diagnostics(step, g, lr=0.1)
    assert out["agree_grad"] == 1.0
    assert out["cos_grad"] == pytest.approx(1.0, abs=1e-12)
    # for a Gaussian vector cos(g, sign g)^2 = density -> 2/pi
    assert out["cos_sign_grad"] ** 2 == pytest.approx(out["density"])
    assert out["density"] == pytest.approx(2 / math.pi, abs=0.04)
    assert out["p50"] == pytest.approx(
        float(np.median(np.abs(g.numpy()))), rel=1e-9)


def test_adam_update_has_the_signs_of_its_momentum():
    gen = torch.Generator().manual_seed(4)
    theta = torch.nn.Parameter(torch.zeros(300, dtype=torch.float64))
    opt = magcore.Adam([theta], lr=0.01)
    for _ in range(20):
        before = theta.detach().clone()
        g = torch.randn(300, generator=gen, dtype=torch.float64) + 0.3
        theta.grad = g
        opt.step()
        out = update_diagnostics(before - theta.detach(), g,
                                 opt.state[theta]["exp_avg"], lr=0.01)
        assert out["agree_momentum"] == 1.0
        assert out["cos_sign_momentum"] ** 2 == pytest.approx(
            out["density"])
    assert out["agree_grad"] < 1.0
    assert set(out) == {"agree_grad", "cos_sign_grad", "cos_grad",
                        "density", "agree_momentum", "cos_sign_momentum",
                        "p5", "p25", "p50", "p75", "p95"}


def test_update_diagnostics_rejects_bad_lr():
    for lr in (0.0, -1.0, math.nan, "a"):
        with pytest.raises(ValueError, match="lr"):
            update_diagnostics(torch.ones(3), torch.ones(3), lr=lr)
