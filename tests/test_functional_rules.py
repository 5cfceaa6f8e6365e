"""The pure, batched update rules against the optimizer classes."""

import pytest
import torch

from magcore.optim import functional as F
from magcore.sweeps import make_optimizer

# method -> hyperparameters of three runs stepped together; they differ
# in lr, exponents and momentum (zero and non-zero in one batch).
CASES = {
    "sgd": [dict(lr=0.05), dict(lr=0.02, momentum=0.9),
            dict(lr=0.03, momentum=0.8, nesterov=1, weight_decay=0.01)],
    "sgd-dampening": [dict(lr=0.05, momentum=0.9, dampening=0.5),
                      dict(lr=0.01, momentum=0.0, dampening=0.3),
                      dict(lr=0.04, weight_decay=0.1)],
    "adam": [dict(lr=0.01), dict(lr=0.02, beta1=0.8, beta2=0.99,
                                 weight_decay=0.1),
             dict(lr=0.005, beta1=0.0, eps=1e-3)],
    "adamw": [dict(lr=0.01, weight_decay=0.1), dict(lr=0.03),
              dict(lr=0.01, beta1=0.5, beta2=0.9, weight_decay=0.5)],
    "pqsgd": [dict(lr=0.05, p=2.0, q=0.5, beta1=0.5, beta2=0.5,
                   weight_decay=0.01),
              dict(lr=0.02, p=0.5, q=0.2, beta1=0.9, beta2=0.95),
              dict(lr=0.03, p=1.0, q=1.0)],
    "pqsgd-tensor": [dict(lr=0.05, p=2.0, q=0.5, beta1=0.5, beta2=0.5),
                     dict(lr=0.02, p=0.5, q=0.2, beta1=0.9, beta2=0.95,
                          weight_decay=0.1),
                     dict(lr=0.03, p=1.0, q=0.0)],
    "pqsgd-uniform": [dict(lr=0.05, p=0.0, q=0.0, beta1=0.9, beta2=0.9),
                      dict(lr=0.02, p=0.0, q=0.0, beta1=0.9, beta2=0.9),
                      dict(lr=0.03, p=0.0, q=0.0, beta1=0.9, beta2=0.9)],
    "signsgd": [dict(lr=0.01), dict(lr=0.02, momentum=0.9),
                dict(lr=0.005, momentum=0.5)],
    "signpowersgd": [dict(lr=0.05, p=0.5), dict(lr=0.02, p=0.3,
                                                momentum=0.5),
                     dict(lr=0.01, p=0.0, momentum=0.9)],
    "normpowersgd": [dict(lr=0.05, p=0.5), dict(lr=0.02, p=1.5,
                                                momentum=0.7),
                     dict(lr=0.03, p=1.0)],
    "nsgd": [dict(lr=0.05), dict(lr=0.02, momentum=0.9),
             dict(lr=0.1, momentum=0.3)],
    "lion": [dict(lr=0.01, weight_decay=0.1), dict(lr=0.005),
             dict(lr=0.02, beta1=0.5, beta2=0.9)],
}

SHAPES = {"w": (6, 4), "b": (4,), "v": (3,)}


def init(seed):
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(s, generator=gen, dtype=torch.float64)
            for k, s in SHAPES.items()}


def loss_at(params, k):
    """A non-quadratic loss whose data change with the step k."""
    gen = torch.Generator().manual_seed(k)
    x = torch.randn(8, 6, generator=gen, dtype=torch.float64)
    y = torch.randn(8, 4, generator=gen, dtype=torch.float64)
    w, b, v = params["w"], params["b"], params["v"]
    return (((x @ w + b - y) ** 2).mean() + 0.05 * (w ** 4).sum()
            + torch.cosh(v).sum() * (k % 2))


def grads_at(params, k):
    leaves = {n: t.detach().requires_grad_() for n, t in params.items()}
    gs = torch.autograd.grad(loss_at(leaves, k), list(leaves.values()))
    return dict(zip(leaves, gs))


STATE_KEYS = {"momentum_buffer": "momentum_buffer", "exp_avg": "exp_avg",
              "exp_avg_sq": "exp_avg_sq"}


@pytest.mark.parametrize("case", sorted(CASES))
def test_rule_matches_class_step_by_step(case):
    method = case if case in F.RULES else case.split("-")[0]
    runs = CASES[case]
    starts = [init(seed) for seed in range(len(runs))]
    stacked = {n: torch.stack([s[n] for s in starts]) for n in SHAPES}
    hp = F.stack_hparams(method, runs, torch.float64)
    state = F.init_state(method, stacked)
    models = []
    for start, h in zip(starts, runs):
        ps = {n: torch.nn.Parameter(t.clone()) for n, t in start.items()}
        models.append((ps, make_optimizer(method, list(ps.values()), h)))
    for k in range(25):
        grads = {n: [] for n in SHAPES}
        for i, (ps, opt) in enumerate(models):
            g = grads_at({n: stacked[n][i] for n in SHAPES}, k)
            for n in SHAPES:
                grads[n].append(g[n])
            opt.zero_grad()
            loss_at(ps, k).backward()
            opt.step()
        grads = {n: torch.stack(v) for n, v in grads.items()}
        stacked, state = F.step(method, stacked, grads, state, hp)
        for i, (ps, opt) in enumerate(models):
            for n in SHAPES:
                torch.testing.assert_close(stacked[n][i], ps[n].detach(),
                                           rtol=1e-12, atol=1e-13)
                cls_state = opt.state[ps[n]]
                for key in STATE_KEYS:
                    if key in cls_state:
                        torch.testing.assert_close(
                            state[key][n][i], cls_state[key],
                            rtol=1e-12, atol=1e-13)
                if "step" in cls_state:
                    assert float(state["step"][i]) == float(
                        cls_state["step"])


def test_run_norm_is_per_run_lr_norm():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(3, 5, 2, generator=gen, dtype=torch.float64)
    b = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    r = torch.tensor([1.0, 2.0, 3.5], dtype=torch.float64)
    got = F.run_norm([a, b], r)
    for i in range(3):
        flat = torch.cat([a[i].flatten(), b[i].flatten()])
        want = torch.linalg.vector_norm(flat, ord=float(r[i]))
        torch.testing.assert_close(got[i], want, rtol=1e-13, atol=0)
    zero = F.run_norm([torch.zeros(2, 3)], torch.tensor([2.0, 1.0]))
    assert zero.tolist() == [0.0, 0.0]
    big = torch.full((1, 4), 1e300, dtype=torch.float64)
    assert float(F.run_norm([big], torch.tensor([2.0],
                                                dtype=torch.float64))) \
        == pytest.approx(2e300)


def test_a_nan_run_leaves_the_others_alone():
    params = {"w": torch.ones(3, 4, dtype=torch.float64)}
    grads = {"w": torch.ones(3, 4, dtype=torch.float64)}
    grads["w"][1, 2] = float("nan")
    for method in ("nsgd", "adam", "sgd"):
        hp = F.stack_hparams(method, [dict(lr=0.1)] * 3, torch.float64)
        state = F.init_state(method, params)
        new, _ = F.step(method, params, grads, state, hp)
        assert torch.isfinite(new["w"][0]).all()
        assert torch.isfinite(new["w"][2]).all()
        assert torch.isnan(new["w"][1]).any()


def test_pure_no_inputs_modified():
    params = {"w": torch.ones(2, 3)}
    grads = {"w": torch.full((2, 3), 0.5)}
    state = F.init_state("adam", params)
    hp = F.stack_hparams("adam", [dict(lr=0.1)] * 2)
    F.step("adam", params, grads, state, hp)
    assert params["w"].eq(1).all() and state["step"].eq(0).all()
    assert state["exp_avg"]["w"].eq(0).all()


@pytest.mark.parametrize("method, hparams, word", [
    ("nope", dict(lr=0.1), "method"),
    ("sgd", dict(lr=-1.0), "lr"),
    ("sgd", dict(), "lr"),
    ("sgd", dict(lr=0.1, momentum=1.0), "momentum"),
    ("sgd", dict(lr=0.1, nesterov=2), "nesterov"),
    ("adam", dict(lr=0.1, beta2=1.5), "beta2"),
    ("adam", dict(lr=0.1, betas=(0.9, 0.9)), "betas"),
    ("signpowersgd", dict(lr=0.1), "p"),
    ("pqsgd", dict(lr=0.1, q=float("inf")), "q"),
    ("sgd", dict(lr=float("inf")), "lr"),
])
def test_bad_hparams_are_named(method, hparams, word):
    with pytest.raises(ValueError, match=word):
        F.check_hparams(method, hparams)


def test_stack_needs_a_run():
    with pytest.raises(ValueError, match="hparams_list"):
        F.stack_hparams("sgd", [])
