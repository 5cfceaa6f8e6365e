"""The heavy-tailed imbalance experiment: structure and real properties.

The experiment runs at the tiny "test" scale (m = 4, 30 steps); the
Hessian-block traces are checked against autograd, and the one-hot model
against its closed forms.
"""

import math

import numpy as np
import pytest
import torch

from magcore.experiments import get
from magcore.experiments.imbalance import (SETTINGS, class_balanced,
                                           decoupled_curves,
                                           imbalance_experiment,
                                           row_curvature, settings_for)
from magcore.problems import make_problem


@pytest.fixture(scope="module")
def small():
    return imbalance_experiment("test", progress=False,
                                labels=["p = 0", "p = 1", "Adam"])


def test_structure(small):
    m = small["size"]["m"]
    assert small["pi"].shape == (m,)
    assert math.isclose(float((small["pi"] * 2.0 ** np.arange(m)).sum()),
                        1.0)
    for name in ("imbalanced", "uniform"):
        assert set(small[name]) == {"p = 0", "p = 1", "Adam"}
        for entry in small[name].values():
            n_ckpt = len(entry["steps"])
            assert entry["steps"][0] == 0
            assert entry["steps"][-1] == small["size"]["steps"]
            assert entry["groups"].shape == (5, n_ckpt, m)
            assert entry["loss"].shape == (5, n_ckpt)
            assert len(entry["final"]) == 5
            assert entry["lr"] in entry["lrs"]
            assert entry["balanced_lr"] in entry["lrs"]
            assert len(entry["scores"]) == len(entry["lrs"])
    assert set(small["curvature"]) == {"init", "p = 1", "Adam"}


def test_group_losses_average_to_the_loss(small):
    # Every group holds 2^m examples, so the loss is their plain mean.
    for entry in small["imbalanced"].values():
        assert np.allclose(entry["groups"].mean(-1), entry["loss"],
                           rtol=1e-4, atol=1e-5)


def test_tuned_rate_minimises_the_grid_score(small):
    for entry in small["imbalanced"].values():
        best = entry["lrs"][int(np.argmin(entry["scores"]))]
        assert best == entry["lr"]


def test_sign_descent_helps_the_rare_group_more_than_gd(small):
    # Even at the test scale, sign descent lowers the loss of the rarest
    # group by more than GD does (relative to the start).
    rare = {label: e["groups"][:, -1, -1].mean() / e["groups"][:, 0,
                                                                -1].mean()
            for label, e in small["imbalanced"].items()}
    assert rare["p = 0"] < rare["p = 1"]


def test_class_balanced_weights():
    m = 3
    groups = np.array([[1.0, 2.0, 4.0]])
    assert np.allclose(class_balanced(groups, m), (1 + 4 + 16) / 7)
    assert np.allclose(class_balanced(np.ones((2, 4, m)), m), 1.0)


def test_settings_for_rejects_unknown_label():
    assert len(settings_for()) == len(SETTINGS) == 7
    with pytest.raises(ValueError, match="Invalid label"):
        settings_for(["SGD"])


def test_unknown_scale():
    with pytest.raises(ValueError, match="Invalid scale"):
        imbalance_experiment("huge", progress=False)


@pytest.mark.parametrize("name", ["softmax-imbalanced", "softmax-uniform"])
@pytest.mark.parametrize("bias", [True, False])
def test_row_curvature_matches_autograd(name, bias):
    prob = make_problem(name, m=3, dim=4, bias=bias, dtype="float64")
    params = prob.init(2)
    params = {k: 3 * v for k, v in params.items()}
    grad_norm, trace = row_curvature(prob, params)
    batch = prob.sample(None, None)
    keys = list(params)

    def loss(*tensors):
        return prob.loss(dict(zip(keys, tensors)), batch)

    tensors = [v.clone().requires_grad_() for v in params.values()]
    grads = torch.autograd.grad(loss(*tensors), tensors)
    rows = grads[0] if not bias else torch.cat(
        [grads[0], grads[1][:, None]], 1)
    assert np.allclose(grad_norm, rows.norm(dim=1).numpy(), rtol=1e-10)
    hess = torch.autograd.functional.hessian(loss, tuple(params.values()))
    n_classes, dim = params["weight"].shape
    for k in range(n_classes):
        diag = hess[0][0].reshape(n_classes * dim, n_classes * dim)
        block = diag[k * dim:(k + 1) * dim, k * dim:(k + 1) * dim]
        expected = block.trace()
        if bias:
            expected = expected + hess[1][1][k, k]
        assert math.isclose(trace[k], expected.item(), rel_tol=1e-10)


def test_decoupled_closed_forms():
    m, steps, lr = 4, 400, 4.0
    out = decoupled_curves(m, steps, lr)
    n_classes = 2 ** m - 1
    t = np.arange(steps + 1)
    # Sign descent: every class follows log(1 + (C - 1) exp(-2 lr t)).
    sign_pred = np.log1p((n_classes - 1) * np.exp(-2 * lr * t))
    assert np.allclose(out["sign"], sign_pred[:, None], rtol=1e-9,
                       atol=1e-12)
    # GD: late in training loss * pi * lr * t -> (C - 1) / C for the
    # frequent classes.
    product = out["gd"][-1] * out["pi"] * lr * steps
    frequent = out["pi"] * lr * steps > 200
    assert frequent.any()
    assert np.allclose(product[frequent], (n_classes - 1) / n_classes,
                       rtol=0.05)
    # GD: classes of one frequency have the same curve.
    for g in range(m):
        cols = out["gd"][:, out["class_group"] == g]
        assert np.allclose(cols, cols[:, :1])


def test_registered_runner_reports(monkeypatch):
    from magcore.experiments import imbalance

    experiment = get("imbalance")
    assert experiment.run is imbalance.run_imbalance
    assert "heavy-tailed" in experiment.summary
    monkeypatch.setitem(imbalance.SIZES, "cpu", imbalance.SIZES["test"])
    report = experiment.run("cpu", None, "cpu", False)
    assert "imbalanced:" in report and "uniform:" in report
    assert report.count(" diverged; groups ") == 2 * len(SETTINGS)
    assert "alpha" in report
