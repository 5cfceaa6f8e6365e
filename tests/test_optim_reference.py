"""magcore's SGD and Adam against torch.optim, and the family's identities:
end points, presets and the l_r steepest-descent property."""

import itertools

import pytest
import torch

import magcore
from optim_cases import loss_at, make_params, run

TOL = 1e-9


def _max_diff(params_a, params_b):
    """Largest absolute difference; infinite if either side is not finite."""
    worst = 0.0
    for a, b in zip(params_a, params_b):
        if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
            return float("inf")
        if a.numel():
            worst = max(worst, (a - b).abs().max().item())
    return worst


SGD_GRID = [
    dict(momentum=m, dampening=d, weight_decay=wd, nesterov=n)
    for m, d, wd, n in itertools.product(
        [0.0, 0.5, 0.9], [0.0, 0.3], [0.0, 0.01], [False, True])
    if not (n and (m == 0 or d != 0))
]


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("kwargs", SGD_GRID, ids=str)
def test_sgd_matches_torch(kwargs, foreach):
    ours, _ = run(magcore.SGD, dict(lr=0.05, foreach=foreach, **kwargs))
    theirs, _ = run(torch.optim.SGD, dict(lr=0.05, **kwargs))
    assert _max_diff(ours, theirs) <= TOL


ADAM_GRID = [
    dict(betas=b, eps=e, weight_decay=wd)
    for b, e, wd in itertools.product(
        [(0.9, 0.999), (0.0, 0.9), (0.5, 0.0)], [1e-8, 1e-3], [0.0, 0.1])
]


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("kwargs", ADAM_GRID, ids=str)
def test_adam_matches_torch(kwargs, foreach):
    ours, _ = run(magcore.Adam, dict(lr=0.01, foreach=foreach, **kwargs))
    theirs, _ = run(torch.optim.Adam, dict(lr=0.01, **kwargs))
    assert _max_diff(ours, theirs) <= TOL


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("kwargs", ADAM_GRID, ids=str)
def test_adamw_matches_torch(kwargs, foreach):
    ours, _ = run(magcore.Adam, dict(lr=0.01, foreach=foreach,
                                     decoupled_weight_decay=True, **kwargs))
    theirs, _ = run(torch.optim.AdamW, dict(lr=0.01, **kwargs))
    assert _max_diff(ours, theirs) <= TOL


def test_maximize_matches_torch():
    ours, _ = run(magcore.Adam, dict(lr=0.01, maximize=True))
    theirs, _ = run(torch.optim.Adam, dict(lr=0.01, maximize=True))
    assert _max_diff(ours, theirs) <= TOL
    # Ascent on this loss diverges: a few small steps stay finite.
    kwargs = dict(lr=1e-3, momentum=0.9, maximize=True)
    ours, _ = run(magcore.SGD, kwargs, steps=5)
    theirs, _ = run(torch.optim.SGD, kwargs, steps=5)
    assert _max_diff(ours, theirs) <= TOL


def _assert_same_trajectory(a_cls, a_kwargs, b_cls, b_kwargs, tol=0.0):
    """Both optimizers take the same 30 steps: bit for bit when tol is 0."""
    for foreach in (False, True):
        a, _ = run(a_cls, dict(a_kwargs, foreach=foreach))
        b, _ = run(b_cls, dict(b_kwargs, foreach=foreach))
        if tol == 0.0:
            assert all(torch.equal(x, y) for x, y in zip(a, b))
        else:
            assert _max_diff(a, b) <= tol


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sign_power_at_zero_is_sign_sgd(momentum):
    _assert_same_trajectory(
        magcore.SignPowerSGD, dict(lr=0.01, p=0.0, momentum=momentum),
        magcore.SignSGD, dict(lr=0.01, momentum=momentum))


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_norm_power_at_zero_is_nsgd(momentum):
    _assert_same_trajectory(
        magcore.NormPowerSGD, dict(lr=0.05, p=0.0, momentum=momentum),
        magcore.NSGD, dict(lr=0.05, momentum=momentum))


@pytest.mark.parametrize("family", [magcore.SignPowerSGD,
                                    magcore.NormPowerSGD])
def test_power_families_at_one_are_sgd(family):
    _assert_same_trajectory(family, dict(lr=0.05, p=1.0),
                            magcore.SGD, dict(lr=0.05))


def test_adam_without_averaging_or_eps_is_sign_sgd():
    # Every gradient entry of this problem is non-zero (0/0 would be NaN).
    # Adam computes lr * g / |g| in one rounding, so equality is to 1e-15.
    _assert_same_trajectory(
        magcore.Adam, dict(lr=0.01, betas=(0.0, 0.0), eps=0.0),
        magcore.SignSGD, dict(lr=0.01), tol=1e-15)


@pytest.mark.parametrize("name, preset, general", [
    ("sign", (magcore.SignSGD, dict(lr=0.01, momentum=0.9)),
     dict(p=0.0, q=0.0, betas=(0.9, 0.9))),
    ("nsgd", (magcore.NSGD, dict(lr=0.05, momentum=0.9)),
     dict(p=1.0, q=0.0, betas=(0.9, 0.9))),
    ("lion", (magcore.Lion, dict(lr=0.01, weight_decay=0.1)),
     dict(p=0.0, q=0.0, betas=(0.9, 0.99), weight_decay=0.1)),
    ("normpower", (magcore.NormPowerSGD, dict(lr=0.05, p=0.4)),
     dict(p=1.0, q=0.4)),
])
def test_presets_are_pqsgd(name, preset, general):
    cls, kwargs = preset
    _assert_same_trajectory(cls, kwargs, magcore.PQSGD,
                            dict(general, lr=kwargs["lr"]))


def test_lion_follows_the_paper_formula():
    lr, (b1, b2), wd = 0.01, (0.9, 0.99), 0.1
    params, _ = run(magcore.Lion, dict(lr=lr, weight_decay=wd), steps=10)
    ref = make_params()
    m = [torch.zeros_like(t) for t in ref]
    with torch.no_grad():
        for k in range(10):
            for t in ref:
                t.grad = None
            with torch.enable_grad():
                loss_at(ref, k).backward()
            for t, mt in zip(ref, m):
                if t.grad is None:
                    continue
                c = b1 * mt + (1 - b1) * t.grad
                t -= lr * (torch.sign(c) + wd * t)
                mt.mul_(b2).add_((1 - b2) * t.grad)
    assert _max_diff(params, ref) <= 1e-12


@pytest.mark.parametrize("p", [0.25, 0.5, 1.0, 2.0, 4.0])
def test_sign_power_step_is_lr_steepest_descent(p):
    """<g, d> = ||d||_r ||g||_{r*} with r = (p+1)/p and r* = p+1, and no
    direction of the same l_r length does better (Hoelder)."""
    gen = torch.Generator().manual_seed(1)
    theta = torch.nn.Parameter(torch.randn(50, dtype=torch.float64,
                                           generator=gen))
    target = torch.randn(50, dtype=torch.float64, generator=gen)
    opt = magcore.SignPowerSGD([theta], lr=0.1, p=p)
    before = theta.detach().clone()
    (0.5 * (theta - target) ** 4).sum().backward()
    g = theta.grad.clone()
    opt.step()
    d = (before - theta.detach()) / 0.1

    r, r_star = (p + 1) / p, p + 1
    d_norm = torch.linalg.vector_norm(d, ord=r)
    inner = torch.dot(g, d)
    bound = d_norm * torch.linalg.vector_norm(g, ord=r_star)
    assert inner.item() == pytest.approx(bound.item(), rel=1e-12)

    others = torch.randn(200, 50, dtype=torch.float64, generator=gen)
    others = others / torch.linalg.vector_norm(
        others, ord=r, dim=1, keepdim=True) * d_norm
    assert (others @ g).max() < inner
