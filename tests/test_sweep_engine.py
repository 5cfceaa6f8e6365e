"""The sweep engine: specs, batched training against plain loops, tuning
and the command line."""

import json
import math

import pytest
import torch

from magcore.experiments import EXPERIMENTS, get
from magcore.experiments.__main__ import main
from magcore.problems import Problem
from magcore.problems.toy import LinearRegression
from magcore.sweeps import (ResultStore, RunSpec, Setting, grid, log_range,
                            make_optimizer, run_sweep, sobol, tune)
from magcore.sweeps.engine import train_batch
from magcore.sweeps.spec import data_seed, schedule_factors


class TinyMLP(Problem):
    """A two-layer tanh network on random regression data (float64)."""

    name = "tiny-mlp"

    def __init__(self, n_train=64):
        self.n_train = n_train
        gen = torch.Generator().manual_seed(7)
        self.x = torch.randn(n_train, 5, generator=gen,
                             dtype=torch.float64)
        self.y = torch.sin(self.x.sum(1, keepdim=True))

    def init(self, seed):
        gen = torch.Generator().manual_seed(seed)
        return {"w1": 0.5 * torch.randn(5, 6, generator=gen,
                                        dtype=torch.float64),
                "b1": torch.zeros(6, dtype=torch.float64),
                "w2": 0.5 * torch.randn(6, 1, generator=gen,
                                        dtype=torch.float64)}

    def sample(self, generator, batch_size):
        idx = torch.randint(self.n_train, (batch_size,),
                            generator=generator)
        return self.x[idx], self.y[idx]

    def loss(self, params, batch):
        x, y = batch
        h = torch.tanh(x @ params["w1"] + params["b1"])
        return ((h @ params["w2"] - y) ** 2).mean()

    def metrics(self, params):
        with torch.no_grad():
            return {"loss": float(self.loss(params, (self.x, self.y)))}

    def config(self):
        return {"n_train": self.n_train}


def reference_run(spec):
    """The plain loop: one model, autograd, a magcore optimizer class."""
    problem = spec.problem
    params = {k: torch.nn.Parameter(v.clone())
              for k, v in problem.init(spec.seed).items()}
    opt = make_optimizer(spec.method, list(params.values()),
                         spec.hparams_dict())
    gen = torch.Generator().manual_seed(data_seed(spec.seed))
    factors = schedule_factors(spec)
    lr = spec.hparams_dict()["lr"]
    losses = []
    for k in range(spec.steps):
        batch = problem.sample(gen, spec.batch_size)
        for group in opt.param_groups:
            group["lr"] = lr * factors[k]
        opt.zero_grad()
        loss = problem.loss(params, batch)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


MIXED = [("pqsgd", dict(lr=0.05, p=0.5, q=0.5)),
         ("pqsgd", dict(lr=0.02, p=1.0, q=0.0, beta1=0.9, beta2=0.9)),
         ("pqsgd", dict(lr=0.01, p=0.0, q=0.0, beta1=0.5, beta2=0.99)),
         ("pqsgd", dict(lr=50.0, p=1.0, q=1.0)),       # diverges
         ("pqsgd", dict(lr=0.1, p=2.0, q=1.0, beta1=0.7, beta2=0.7))]


def mixed_specs(problem, schedule="cosine"):
    return [RunSpec(problem, m, h, steps=40, batch_size=8, seed=i % 3,
                    schedule=schedule, warmup=5, checkpoints=8)
            for i, (m, h) in enumerate(MIXED)]


def test_batched_equals_alone_and_a_diverged_run_poisons_nothing():
    problem = TinyMLP()
    specs = mixed_specs(problem)
    together = train_batch(specs, "cpu")
    assert [r.diverged for r in together] == [False] * 3 + [True, False]
    assert together[3].diverged_at is not None
    assert math.isnan(together[3].metrics["loss"][-1])
    for spec, got in zip(specs, together):
        alone = train_batch([spec], "cpu")[0]
        assert got.diverged == alone.diverged
        assert got.diverged_at == alone.diverged_at
        assert got.steps == alone.steps
        torch.testing.assert_close(
            torch.tensor(got.batch_loss), torch.tensor(alone.batch_loss),
            rtol=1e-10, atol=1e-12, equal_nan=True)
        torch.testing.assert_close(
            torch.tensor(got.metrics["loss"]),
            torch.tensor(alone.metrics["loss"]),
            rtol=1e-10, atol=1e-12, equal_nan=True)


@pytest.mark.parametrize("method, hparams", [
    ("sgd", dict(lr=0.05, momentum=0.9, nesterov=1)),
    ("adamw", dict(lr=0.01, weight_decay=0.1)),
    ("signpowersgd", dict(lr=0.02, p=0.5, momentum=0.5)),
    ("normpowersgd", dict(lr=0.05, p=0.5, momentum=0.5)),
    ("lion", dict(lr=0.003)),
])
def test_engine_matches_the_plain_loop(method, hparams):
    spec = RunSpec(TinyMLP(), method, hparams, steps=30, batch_size=8,
                   seed=1, schedule="linear", warmup=3)
    other = spec.replace(seed=2, hparams={"lr": hparams["lr"] / 2})
    got = train_batch([spec, other], "cpu")[0]
    torch.testing.assert_close(torch.tensor(got.batch_loss),
                               torch.tensor(reference_run(spec)),
                               rtol=1e-10, atol=1e-12)


def test_cpu_results_are_deterministic_per_seed():
    specs = mixed_specs(TinyMLP(), schedule="constant")
    a = run_sweep(specs, device="cpu", progress=False).results
    b = run_sweep(specs[::-1], device="cpu", progress=False).results[::-1]
    for x, y in zip(a, b):
        assert x.to_dict()["batch_loss"] == y.to_dict()["batch_loss"]
        assert x.to_dict()["metrics"] == y.to_dict()["metrics"]
    seeds = [RunSpec(TinyMLP(), "sgd", dict(lr=0.05), steps=5,
                     batch_size=4, seed=s) for s in (0, 1)]
    x, y = run_sweep(seeds, device="cpu", progress=False).results
    assert x.batch_loss != y.batch_loss


def test_spec_description_is_canonical():
    problem = LinearRegression(n_train=16, dim=2)
    a = RunSpec(problem, "sgd", {"lr": 0.1}, steps=5)
    b = RunSpec(LinearRegression(n_train=16, dim=2), "sgd",
                {"momentum": 0.0, "lr": 0.1}, steps=5)
    assert a == b and hash(a) == hash(b)
    assert a != a.replace(seed=1)
    assert json.loads(a.canonical())["hparams"]["nesterov"] == 0.0
    assert a.record_steps()[0] == 0 and a.record_steps()[-1] == 5
    assert len(RunSpec(problem, "sgd", {"lr": 0.1}, steps=100,
                       checkpoints=10).record_steps()) == 11
    assert a.replace(method="adam", hparams={"lr": 0.1}).method == "adam"


@pytest.mark.parametrize("changes, word", [
    (dict(method="sgdd"), "method"), (dict(steps=0), "steps"),
    (dict(seed=-1), "seed"), (dict(batch_size=0), "batch_size"),
    (dict(schedule="step"), "schedule"), (dict(checkpoints=0),
                                          "checkpoints"),
    (dict(divergence=1.0), "divergence"), (dict(warmup=-2), "warmup"),
    (dict(hparams={"lr": -0.1}), "lr"), (dict(problem="quad"),
                                         "problem")])
def test_bad_specs_are_named(changes, word):
    fields = dict(problem=LinearRegression(n_train=16, dim=2),
                  method="sgd", hparams={"lr": 0.1}, steps=5)
    fields.update(changes)
    with pytest.raises(ValueError, match=word):
        RunSpec(**fields)


def test_schedules():
    spec = RunSpec(LinearRegression(n_train=8, dim=2), "sgd", {"lr": 1.0},
                   steps=4, schedule="cosine", warmup=2)
    got = schedule_factors(spec)
    want = [0.5 * 0.5 * (1 + math.cos(math.pi * k / 4)) if k == 0 else
            0.5 * (1 + math.cos(math.pi * k / 4)) for k in range(4)]
    assert got == pytest.approx(want)
    assert schedule_factors(spec.replace(schedule="linear", warmup=0)) \
        == pytest.approx([1, 0.75, 0.5, 0.25])


def test_grid_sobol_and_log_range():
    problem = LinearRegression(n_train=8, dim=2)
    lrs = log_range(1e-3, 1e1, 5)
    assert lrs == pytest.approx([1e-3, 1e-2, 1e-1, 1.0, 10.0])
    specs = grid(problem, "pqsgd", steps=3, lr=lrs, p=[0.0, 1.0],
                 seeds=[0, 1])
    assert len(set(specs)) == 20
    points = sobol(problem, "pqsgd", 16, {"lr": (1e-4, 1.0, "log"),
                                          "p": (0.0, 2.0)}, steps=3,
                   beta1=0.9)
    lr = torch.tensor([s.hparams_dict()["lr"] for s in points])
    p = torch.tensor([s.hparams_dict()["p"] for s in points])
    assert (lr >= 1e-4).all() and (lr <= 1).all()
    assert (p >= 0).all() and (p <= 2).all()
    # a scrambled Sobol sample fills each half of each axis evenly
    assert int((p < 1).sum()) == 8
    assert int((lr < 1e-2).sum()) == 8
    assert all(s.hparams_dict()["beta1"] == 0.9 for s in points)
    with pytest.raises(ValueError, match="range for p"):
        sobol(problem, "pqsgd", 4, {"p": (1.0, 0.0)}, steps=3, lr=0.1)
    with pytest.raises(ValueError, match="range"):
        log_range(1.0, 0.1, 3)


def test_tune_extends_an_edge_and_reruns_five_seeds():
    problem = LinearRegression(n_train=64, dim=4)
    common = dict(steps=40, batch_size=8, checkpoints=5, progress=False,
                  device="cpu")
    low = Setting("SGD", "sgd", {}, (1e-4, 1e-3), n_lrs=3)
    [res] = tune([low], problem, max_extensions=1, **common)
    assert res.extensions == 1 and res.edge == "upper"
    assert res.best_lr == pytest.approx(1e-2)
    assert len(res.lrs) == 5 and len(res.final) == 5
    assert {r.spec.seed for r in res.final} == {1, 2, 3, 4, 5}
    assert "upper edge" in res.describe()
    [res] = tune([low], problem, max_extensions=6, extend=3, **common)
    assert res.edge is None and res.lrs[0] < res.best_lr < res.lrs[-1]
    high = Setting("SGD", "sgd", {}, (1e2, 1e4), n_lrs=3)
    [res] = tune([high], problem, max_extensions=4, extend=2, **common)
    assert res.edge is None
    assert any(math.isinf(s) for s in res.scores)
    assert res.best_lr < 1e2
    with pytest.raises(ValueError, match="final_seeds"):
        tune([low], problem, final_seeds=[1, 2, 3], **common)


def test_experiment_registry_and_cli(tmp_path, capsys):
    assert "toy-tuning" in EXPERIMENTS
    with pytest.raises(ValueError, match="experiment"):
        get("no-such-experiment")
    assert main(["list"]) == 0
    assert "toy-tuning" in capsys.readouterr().out
    store = tmp_path / "store"
    assert main(["run", "toy-tuning", "--scale", "cpu", "--store",
                 str(store), "--device", "cpu", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "SignSGD: lr" in out and "over 5 seeds" in out
    n_entries = len(ResultStore(store))
    assert n_entries >= 6 * (2 * 7 + 5)
    main(["run", "toy-tuning", "--store", str(store), "--device", "cpu"])
    again = capsys.readouterr().out
    assert "0 trained" in again and "42 trained" not in again
    assert len(ResultStore(store)) == n_entries


def test_a_finite_blow_up_is_flagged_not_dropped():
    problem = LinearRegression(n_train=32, dim=3)
    design = torch.cat([problem.x, torch.ones(32, 1, dtype=torch.float64)],
                       1)
    top = float(torch.linalg.eigvalsh(design.T @ design / 32)[-1])
    spec = RunSpec(problem, "sgd", {"lr": 3.0 / top}, steps=30,
                   checkpoints=30)
    calm = spec.replace(hparams={"lr": 0.5 / top})
    wild, ok = run_sweep([spec, calm], device="cpu",
                         progress=False).results
    assert wild.diverged and not ok.diverged
    k = wild.diverged_at
    assert 0 < k < 30
    assert all(math.isfinite(v) for v in wild.batch_loss[:k])
    assert all(math.isnan(v) for v in wild.batch_loss[k:])
    assert wild.batch_loss[k - 1] <= 1e3 * wild.metrics["loss"][0]
    assert wild.final_loss() == math.inf
    assert math.isfinite(ok.final_loss())


def test_a_batch_of_diverging_runs_stops_early_and_keeps_its_shape():
    problem = TinyMLP()
    specs = [RunSpec(problem, "sgd", {"lr": lr}, steps=50, batch_size=8,
                     checkpoints=10) for lr in (1e3, 1e4)]
    results = run_sweep(specs, device="cpu", progress=False).results
    for r in results:
        assert r.diverged and r.diverged_at <= 5
        assert len(r.batch_loss) == 50 and len(r.steps) == 11
        assert len(r.metrics["loss"]) == 11
        assert math.isnan(r.batch_loss[-1])
        assert r.to_dict()["batch_loss"][-1] is None


def test_bad_sweep_arguments_are_named():
    spec = RunSpec(TinyMLP(), "sgd", {"lr": 0.1}, steps=2, batch_size=2)
    with pytest.raises(ValueError, match="max_batch"):
        run_sweep([spec], max_batch=0, progress=False)
    with pytest.raises(ValueError, match="device"):
        run_sweep([spec], device="no-such-device", progress=False)
    with pytest.raises(ValueError, match="spec"):
        run_sweep(["sgd"], progress=False)
    with pytest.raises(ValueError, match="share a batch"):
        train_batch([spec, spec.replace(steps=3)], "cpu")
