"""The phase diagram of the chapter 'The answer', at the test scale."""

import math

import numpy as np
import pytest
import torch

from magcore.experiments import answer as answer_mod
from magcore.experiments import get
from magcore.experiments.answer import (SIZES, diagonal_share,
                                        phase_diagram, report)


@pytest.fixture(scope="module")
def diagram():
    return phase_diagram("test", progress=False)


def test_structure(diagram):
    size = SIZES["test"]
    n_col = len(size["kappas"]) * len(size["alignments"])
    shape = (len(size["noise"]), n_col, len(size["p_values"]))
    assert diagram.scores.shape == shape + (5,)
    assert diagram.best_lr.shape == shape
    assert diagram.best_p().shape == shape[:2]
    assert diagram.ties().shape == shape[:2]
    assert set(diagram.best_p().ravel()) <= set(size["p_values"])
    assert (diagram.runner_up() != diagram.best_p()).all()
    assert (diagram.margin() >= 0).all()
    assert diagram.n_edges() == 0
    assert np.isfinite(diagram.best_lr).all()
    # the noise axis is the simple noise scale at the start, in
    # expectation; the measured one at a single start is of that order
    assert (diagram.sigma[0] == 0).all() and (diagram.sigma[1] > 0).all()
    ratio = diagram.b_simple_start[1] / np.asarray(size["noise"][1])
    assert ((ratio > 0.05) & (ratio < 20)).all()


def test_exact_gradients_favour_gradient_descent_when_rotated(diagram):
    # without noise and with a constant rate, gradient descent converges
    # linearly while smaller exponents stall at a floor set by the rate:
    # after a rotation p = 1 ends lowest, by a margin beyond the seeds
    j = diagram.columns.index((SIZES["test"]["kappas"][0], "rotated"))
    assert diagram.best_p()[0, j] == 1.0
    assert not diagram.ties()[0, j]


def test_noise_shrinks_the_margin(diagram):
    margin = diagram.margin()
    assert (margin[1] < margin[0]).all()


def test_diagonal_share():
    assert diagonal_share(torch.diag(torch.tensor([1.0, 5.0]))) == 1.0
    assert math.isclose(diagonal_share(torch.ones(2, 2)), 0.5)
    with pytest.raises(ValueError, match="hessian"):
        diagonal_share(torch.zeros(2, 3))


def test_bad_scale():
    with pytest.raises(ValueError, match="scale"):
        phase_diagram("huge", progress=False)


def test_registered_runner_reports_and_resumes(tmp_path):
    from magcore.sweeps import ResultStore
    run = get("answer-phase").run
    first = run("test", ResultStore(tmp_path), "cpu", False)
    n_cells = (len(SIZES["test"]["noise"]) * len(SIZES["test"]["kappas"])
               * len(SIZES["test"]["alignments"]))
    assert first.count("best p") == n_cells and "ties:" in first
    # a second run reads every run from the store and reports the same
    assert run("test", ResultStore(tmp_path), "cpu", False) == first


def test_report_lists_every_cell(diagram):
    text = report(diagram)
    assert text.count("margin") == diagram.best_p().size


def test_abs_moment():
    assert math.isclose(answer_mod.abs_moment(0.0), 1.0)
    assert math.isclose(answer_mod.abs_moment(2.0), 1.0)
    assert math.isclose(answer_mod.abs_moment(4.0), 3.0)
    assert math.isclose(answer_mod.abs_moment(1.0), math.sqrt(2 / math.pi))
    with pytest.raises(ValueError, match="m"):
        answer_mod.abs_moment(-1.0)


def test_power_diagram_scale_free_exponent_without_noise():
    diagram = answer_mod.power_diagram("test", progress=False)
    size = SIZES["test"]
    assert diagram.columns == tuple((k,) for k in size["ks"])
    assert diagram.scores.shape[2] == len(size["power_p_values"])
    # without noise the scale-free exponent 1/(k-1) wins: p = 1 on the
    # quadratic (k = 2), p = 1/3 on the quartic (k = 4)
    best = diagram.best_p()[0]
    assert [round(p, 3) for p in best] == [
        round(1 / (k - 1), 3) for k in size["ks"]]
    assert diagram.diag_share == (1.0, 1.0)
