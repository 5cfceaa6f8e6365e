"""EF-signSGD: the update against a hand computation, the fast path
against the reference, the SGD-shadow identity, the compression identity,
bad input, checkpoints, and convergence where sign descent stalls."""

import copy

import pytest
import torch

from magcore.optim import EFSignSGD, SignSGD
from optim_cases import loss_at, make_params, run


def _by_hand(theta, grads, lr):
    """EF-signSGD written out with numbers, one tensor, from e = 0."""
    theta, error = theta.clone(), torch.zeros_like(theta)
    for g in grads:
        c = lr * g + error
        delta = c.abs().sum() / c.numel() * torch.sign(c)
        theta, error = theta - delta, c - delta
    return theta, error


@pytest.mark.parametrize("foreach", [False, True])
def test_matches_hand_computation(foreach):
    gen = torch.Generator().manual_seed(3)
    grads = [torch.randn(7, dtype=torch.float64, generator=gen)
             for _ in range(5)]
    start = torch.randn(7, dtype=torch.float64, generator=gen)
    w = torch.nn.Parameter(start.clone())
    opt = EFSignSGD([w], lr=0.3, foreach=foreach)
    for g in grads:
        w.grad = g.clone()
        opt.step()
    theta, error = _by_hand(start, grads, 0.3)
    torch.testing.assert_close(w.detach(), theta, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(opt.state[w]["error"], error, rtol=1e-14,
                               atol=1e-14)


def test_fast_path_equals_reference():
    ref, ref_opt = run(EFSignSGD, dict(lr=0.05, foreach=False))
    fast, fast_opt = run(EFSignSGD, dict(lr=0.05, foreach=True))
    for a, b in zip(ref, fast):
        torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-13)
        if a in ref_opt.state:
            torch.testing.assert_close(ref_opt.state[a]["error"],
                                       fast_opt.state[b]["error"],
                                       rtol=1e-13, atol=1e-13)
    assert ref[0] in ref_opt.state and ref[3] in ref_opt.state


@pytest.mark.parametrize("foreach", [False, True])
def test_shadow_point_follows_sgd(foreach):
    # theta_k - e_k moves exactly like SGD with the same gradients.
    params = make_params(seed=1)
    opt = EFSignSGD(params, lr=0.07, foreach=foreach)
    shadow = [p.detach().clone() for p in params]
    for k in range(20):
        opt.zero_grad()
        loss_at(params, k, seed=1).backward()
        for s, p in zip(shadow, params):
            if p.grad is not None:
                s.sub_(0.07 * p.grad)
        opt.step()
        for s, p in zip(shadow, params):
            error = opt.state[p].get("error", torch.zeros_like(p))
            torch.testing.assert_close(p.detach() - error, s, rtol=1e-12,
                                       atol=1e-12)


def test_compression_keeps_a_fixed_share():
    # ||c - Delta||^2 = (1 - ||c||_1^2 / (n ||c||_2^2)) ||c||^2 at step 1.
    gen = torch.Generator().manual_seed(5)
    for n in (1, 2, 10, 1000):
        g = torch.randn(n, dtype=torch.float64, generator=gen)
        w = torch.nn.Parameter(torch.zeros(n, dtype=torch.float64))
        opt = EFSignSGD([w], lr=1.0)
        w.grad = g.clone()
        opt.step()
        error = opt.state[w]["error"]
        share = g.abs().sum() ** 2 / (n * g.pow(2).sum())
        torch.testing.assert_close(error.pow(2).sum(),
                                   (1 - share) * g.pow(2).sum(),
                                   rtol=1e-12, atol=1e-12)
        assert share >= 1 / n - 1e-15


def test_one_entry_is_plain_sgd():
    w = torch.nn.Parameter(torch.tensor([2.0], dtype=torch.float64))
    opt = EFSignSGD([w], lr=0.1)
    w.grad = torch.tensor([-3.0], dtype=torch.float64)
    opt.step()
    assert torch.equal(w.detach(), torch.tensor([2.3], dtype=torch.float64))
    assert torch.equal(opt.state[w]["error"],
                       torch.zeros(1, dtype=torch.float64))


def test_maximize_flips_the_gradient():
    a = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))
    b = torch.nn.Parameter(a.detach().clone())
    opt_a, opt_b = EFSignSGD([a], lr=0.2), EFSignSGD([b], lr=0.2,
                                                      maximize=True)
    for _ in range(3):
        a.grad = torch.tensor([0.3, -1.0, 2.0])
        b.grad = -a.grad
        opt_a.step()
        opt_b.step()
    assert torch.equal(a, b)


@pytest.mark.parametrize("lr", [-0.1, float("nan"), "fast", None])
def test_bad_lr_is_refused(lr):
    w = torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match="lr"):
        EFSignSGD([w], lr=lr)


def test_state_dict_round_trip():
    params, opt = run(EFSignSGD, dict(lr=0.05), steps=10)
    saved = [p.detach().clone() for p in params]
    state = copy.deepcopy(opt.state_dict())
    for k in range(10, 20):
        opt.zero_grad()
        loss_at(params, k).backward()
        opt.step()
    restored = [torch.nn.Parameter(p.clone()) for p in saved]
    fresh = EFSignSGD(restored, lr=0.05)
    fresh.load_state_dict(state)
    for k in range(10, 20):
        fresh.zero_grad()
        loss_at(restored, k).backward()
        fresh.step()
    for a, b in zip(params, restored):
        assert torch.equal(a, b)


def _stalling(x):
    """eps |x1 + x2| + |x1 - x2|: sign descent never moves x1 + x2."""
    return 0.1 * (x[0] + x[1]).abs() + (x[0] - x[1]).abs()


def test_converges_where_sign_descent_stalls():
    results = {}
    for name, make in [("sign", lambda ps: SignSGD(ps, lr=0.01)),
                       ("ef", lambda ps: EFSignSGD(ps, lr=0.01))]:
        x = torch.nn.Parameter(torch.tensor([1.3, 0.4],
                                            dtype=torch.float64))
        opt = make([x])
        for _ in range(2000):
            opt.zero_grad()
            _stalling(x).backward()
            opt.step()
        results[name] = _stalling(x).item()
    assert results["sign"] >= 0.1 * 1.7 - 1e-12
    assert results["ef"] < 0.02


def test_compression_with_zero_entries_is_an_inequality():
    g = torch.tensor([2.0, 0.0, -1.0, 0.0], dtype=torch.float64)
    w = torch.nn.Parameter(torch.zeros(4, dtype=torch.float64))
    opt = EFSignSGD([w], lr=1.0)
    w.grad = g.clone()
    opt.step()
    share = g.abs().sum() ** 2 / (4 * g.pow(2).sum())
    left = opt.state[w]["error"].pow(2).sum()
    # c = g, Delta = 0.75 sign(g): error (1.25, 0, -0.25, 0).
    assert left.item() == pytest.approx(1.25 ** 2 + 0.25 ** 2, abs=1e-15)
    assert left.item() < ((1 - share) * g.pow(2).sum()).item()


def test_error_stays_within_its_bound():
    # ||e_k|| <= lr G q / (1 - q), q = sqrt(1 - 1/n), for ||g_k|| <= G.
    gen = torch.Generator().manual_seed(11)
    n, lr = 20, 0.05
    w = torch.nn.Parameter(torch.zeros(n, dtype=torch.float64))
    opt = EFSignSGD([w], lr=lr)
    worst, big_g = 0.0, 0.0
    for _ in range(500):
        g = torch.randn(n, dtype=torch.float64, generator=gen) ** 3
        big_g = max(big_g, g.norm().item())
        w.grad = g
        opt.step()
        worst = max(worst, opt.state[w]["error"].norm().item())
    q = (1 - 1 / n) ** 0.5
    assert 0 < worst <= lr * big_g * q / (1 - q)
