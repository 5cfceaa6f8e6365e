"""The 'models' experiment at its tiny test scale: structure, fairness
bookkeeping, the gap and verdict arithmetic, the curvature points, and
that the registered runner reports."""

import math

import numpy as np
import pytest
import torch

from magcore.experiments import get
from magcore.experiments import models as mod
from magcore.sweeps import ResultStore

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return ResultStore(str(tmp_path_factory.mktemp("store")))


@pytest.fixture(scope="module")
def study(store):
    return mod.models_study("test", store=store, device="cpu",
                            progress=False)


def test_structure_and_budgets(study):
    assert set(study.sweeps) == {"digits-softmax", "char-transformer"}
    for name, sweep in study.sweeps.items():
        entry = mod.SCALES["test"]["models"][name]
        labels = [s.label for s in mod.p_settings(name, "full", "test")]
        for which in ("small", "full"):
            s = sweep[which]
            assert [r.setting.label for r in s["results"]] == labels
            batch = entry["small"] if which == "small" else s["n_train"]
            assert s["examples"] == batch * entry["steps"]
            for r in s["results"]:
                assert len(r.final) == len(mod.SEEDS)
                assert sorted(x.spec.seed for x in r.final) == \
                    list(mod.SEEDS)
                # the chosen rate is one of the rates tried, and an edge
                # is reported exactly when it is the grid's end
                assert r.best_lr in r.lrs
                at_end = r.best_lr in (r.lrs[0], r.lrs[-1])
                assert (r.edge is not None) == at_end
                steps, losses = mod.loss_band(r)
                assert losses.shape == (len(mod.SEEDS), len(steps))
                assert steps[0] == 0 and steps[-1] == entry["steps"]
    assert "NGD+m" in [r.setting.label for r in
                       study.sweeps["char-transformer"]["full"]["results"]]


def test_training_makes_progress(study):
    # every tuned method lowers the full training loss on digits
    for which in ("small", "full"):
        for r in study.sweeps["digits-softmax"][which]["results"]:
            steps, losses = mod.loss_band(r)
            assert np.all(losses[:, -1] < losses[:, 0])


def test_best_p_is_the_lowest_family_member(study):
    for name, sweep in study.sweeps.items():
        for which in ("small", "full"):
            res = sweep[which]["results"]
            family = {r.setting.hparams["p"]: r.mean for r in res
                      if r.setting.method == "signpowersgd"}
            assert study.best_p[name][which] == min(family,
                                                    key=family.get)


def test_curvature_points_and_prediction(study):
    for name, points in study.curvature.items():
        steps = mod.SCALES["test"]["models"][name]["steps"]
        assert [p.step for p in points] == [0, steps // 2, steps]
        assert points[-1].loss < points[0].loss
        for p in points:
            assert "all" in p.fits and math.isfinite(p.alpha)
        assert 0.0 <= study.predicted_p[name] <= 1.0
    assert study.verdict in ("held", "held partly", "failed")


def test_gap_closed_and_verdict_arithmetic():
    class R:
        def __init__(self, label, mean):
            self.setting = type("S", (), {"label": label})()
            self.mean = mean
    res = [R("p=1", 4.0), R("Adam", 1.0), R("p=0", 1.6), R("NGD+m", 3.0)]
    assert math.isclose(mod.gap_closed(res, "p=0"), 0.8)
    assert math.isclose(mod.gap_closed(res, "NGD+m"), 1 / 3)
    assert math.isnan(mod.gap_closed([R("p=1", 1.0), R("Adam", 2.0),
                                      R("p=0", 1.0)], "p=0"))
    assert mod.verdict({"a": 0.1, "b": 0.9}, {"a": 0.0, "b": 1.0}) == "held"
    assert mod.verdict({"a": 0.1, "b": 0.1}, {"a": 0.0, "b": 1.0}) == \
        "held partly"
    assert mod.verdict({"a": 1.0, "b": 0.0, "c": 0.0},
                       {"a": 0.0, "b": 1.0, "c": 0.0}) == "failed"


def test_settings_centres_interpolate_geometrically():
    settings = mod.p_settings("digits-softmax", "full", "cpu")
    c = mod.SCALES["cpu"]["models"]["digits-softmax"]["centres"]["full"]
    half = next(s for s in settings if s.label == "p=0.5")
    lo, hi = half.lr_range
    assert math.isclose(math.sqrt(lo * hi), math.sqrt(c["p0"] * c["p1"]))
    assert [s.label for s in settings][-2:] == ["Adam", "Lion"]


def test_bad_arguments():
    with pytest.raises(ValueError, match="scale"):
        mod.p_settings("digits-softmax", "full", "huge")
    with pytest.raises(ValueError, match="model"):
        mod.build_problem("resnet", "cpu")
    with pytest.raises(ValueError, match="which"):
        mod.p_settings("digits-softmax", "medium", "cpu")
    with pytest.raises(ValueError, match="model"):
        mod.models_study("test", models=["resnet"], progress=False)


def test_registered_runner_reports(study, store, monkeypatch):
    # the test scale under the name "cpu"; the sweeps come from the store
    monkeypatch.setitem(mod.SCALES, "cpu", mod.SCALES["test"])
    text = get("models").run("cpu", store, "cpu", False)
    assert "best p" in text and "gap closed (full)" in text
    assert text.splitlines()[-1].startswith("p* = 1 - alpha")
    assert torch.__version__ in text
