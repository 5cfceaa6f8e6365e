"""The contract of every training problem in the registry.

Each problem is built small and in float64, and checked for what the sweep
engine relies on: determinism per seed and per generator state, shapes, a
finite and differentiable pure loss, ``vmap`` of ``grad`` over parameters
stacked for three seeds equal to the loop over seeds, metrics, a config
that rebuilds the problem, and descent under a few steps of SGD.
"""

import json

import pytest
import torch
from torch.func import grad, vmap

import magcore
from magcore.problems import Problem, make_problem, problem_names

pytest.importorskip("sklearn")
pytest.importorskip("mnist1d")

# name: (small float64 arguments, SGD learning rate, batch size for descent;
# the descent test adds momentum 0.9 where the model is a torch module)
CASES = {
    "quadratic": (dict(dim=6, rotate=True, noise_std=0.3), 0.01, 64),
    "power-law": (dict(dim=5, noise_std=0.1), 0.01, 64),
    "quartic": (dict(dim=5), 0.01, 8),
    "noisy-quadratic": (dict(dim=20), 0.5, 64),
    "softmax-imbalanced": (dict(m=4), 0.02, None),
    "softmax-uniform": (dict(m=4), 0.02, None),
    "digits-logistic": (dict(), 0.1, None),
    "digits-softmax": (dict(), 0.1, None),
    "digits-mlp": (dict(hidden=(16,)), 0.1, None),
    "mnist1d-mlp": (dict(n_samples=200, hidden=(16, 16)), 0.1, None),
    "mnist1d-cnn": (dict(n_samples=200, channels=4), 0.3, None),
    "char-transformer": (dict(n_layers=1, width=16, n_heads=2, context=8,
                              n_train=16), 0.5, None),
}
SEEDS = (0, 1, 2)
TIGHT = dict(rtol=1e-10, atol=1e-12)


def build(name, **extra):
    return make_problem(name, **{**CASES[name][0], "dtype": "float64",
                                 **extra})


@pytest.fixture(scope="module", params=sorted(CASES))
def problem(request):
    return build(request.param)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def stacked(prob, seeds=SEEDS):
    inits = [prob.init(s) for s in seeds]
    return inits, {k: torch.stack([p[k] for p in inits]) for k in inits[0]}


def is_random(prob):
    """Whether a batch depends on the generator."""
    return prob.n_train is not None or prob.noise_std > 0


def test_every_registered_problem_is_covered():
    assert set(problem_names()) == set(CASES)
    for name in problem_names():
        prob = build(name)
        assert isinstance(prob, Problem) and prob.name == name


def test_init_is_deterministic_per_seed(problem):
    a, b, c = problem.init(0), problem.init(0), problem.init(1)
    assert list(a) == list(b) == list(c) and len(a) >= 1
    for key in a:
        assert a[key].dtype == torch.float64
        assert torch.equal(a[key], b[key])
    assert any(not torch.equal(a[k], c[k]) for k in a)
    if hasattr(problem, "n_params"):
        assert sum(v.numel() for v in a.values()) == problem.n_params


def test_sample_is_deterministic_per_generator_state(problem):
    first = problem.sample(gen(5), 8)
    again = problem.sample(gen(5), 8)
    other = problem.sample(gen(6), 8)
    assert isinstance(first, tuple) and len(first) >= 1
    for x, y in zip(first, again):
        assert torch.equal(x, y)
    differs = any(not torch.equal(x, y) for x, y in zip(first, other))
    assert differs == is_random(problem)


def test_batch_shapes(problem):
    batch = problem.sample(gen(0), 8)
    if problem.n_train is None:
        assert batch[0].shape == (problem.dim,)
        with pytest.raises(ValueError, match="batch_size"):
            problem.sample(gen(0), 0)
        return
    assert all(t.shape[0] == 8 for t in batch)
    full = problem.sample(gen(0), None)
    assert all(t.shape[0] == problem.n_train for t in full)
    with pytest.raises(ValueError, match="batch_size"):
        problem.sample(gen(0), 2.5)


def test_loss_is_finite_differentiable_and_pure(problem):
    params = problem.init(0)
    kept = {k: v.clone() for k, v in params.items()}
    batch = problem.sample(gen(1), 8)
    value = problem.loss(params, batch)
    assert value.shape == () and value.dtype == torch.float64
    assert bool(torch.isfinite(value))
    torch.manual_seed(123)
    assert torch.equal(problem.loss(params, batch), value)
    grads = grad(problem.loss)(params, batch)
    assert set(grads) == set(params)
    for key in params:
        assert grads[key].shape == params[key].shape
        assert bool(torch.isfinite(grads[key]).all())
        assert torch.equal(params[key], kept[key])
    assert any(bool(g.abs().sum() > 0) for g in grads.values())


def test_vmap_of_grad_equals_the_loop_over_seeds(problem):
    inits, params = stacked(problem)
    batch = problem.sample(gen(3), 8)
    batched = vmap(grad(problem.loss), in_dims=(0, None))(params, batch)
    for i, single in enumerate(inits):
        expected = grad(problem.loss)(single, batch)
        for key in expected:
            torch.testing.assert_close(batched[key][i], expected[key],
                                       **TIGHT)


def test_vmap_with_one_batch_per_configuration(problem):
    inits, params = stacked(problem)
    batches = [problem.sample(gen(10 + i), 8) for i in range(len(SEEDS))]
    stacked_batch = tuple(torch.stack(parts) for parts in zip(*batches))
    losses = vmap(problem.loss)(params, stacked_batch)
    batched = vmap(grad(problem.loss))(params, stacked_batch)
    for i, single in enumerate(inits):
        torch.testing.assert_close(losses[i],
                                   problem.loss(single, batches[i]), **TIGHT)
        expected = grad(problem.loss)(single, batches[i])
        for key in expected:
            torch.testing.assert_close(batched[key][i], expected[key],
                                       **TIGHT)


def test_metrics_have_the_loss_and_vmap(problem):
    inits, params = stacked(problem)
    batched = vmap(problem.metric_tensors)(params)
    for i, single in enumerate(inits):
        values = problem.metrics(single)
        assert "loss" in values and set(values) == set(batched)
        assert all(isinstance(v, float) for v in values.values())
        for key, value in values.items():
            assert batched[key][i].item() == pytest.approx(value, rel=1e-10)
    single = inits[0]
    if problem.n_train is not None:
        full = problem.loss(single, problem.sample(gen(0), None))
    else:
        zero = torch.zeros(problem.dim, dtype=torch.float64)
        full = problem.loss(single, (zero,))
    assert problem.metrics(single)["loss"] == pytest.approx(full.item(),
                                                            rel=1e-12)


def test_config_is_json_and_rebuilds_the_problem(problem):
    config = problem.config()
    assert config["name"] == problem.name
    restored = json.loads(json.dumps(config))
    again = make_problem(**restored)
    assert again.config() == config
    for key, value in problem.init(4).items():
        assert torch.equal(again.init(4)[key], value)
    for x, y in zip(problem.sample(gen(2), 5), again.sample(gen(2), 5)):
        assert torch.equal(x, y)


def test_a_few_sgd_steps_reduce_the_loss(problem):
    _, lr, batch_size = CASES[problem.name]
    params = {k: torch.nn.Parameter(v)
              for k, v in problem.init(0).items()}
    before = problem.metrics(params)["loss"]
    momentum = 0.9 if hasattr(problem, "module") else 0.0
    opt = magcore.SGD(list(params.values()), lr=lr, momentum=momentum)
    generator = gen(0)
    for _ in range(20):
        opt.zero_grad()
        problem.loss(params, problem.sample(generator, batch_size)) \
            .backward()
        opt.step()
    after = problem.metrics(params)["loss"]
    assert after < 0.95 * before


@pytest.mark.parametrize("name", sorted(CASES))
def test_float32_starts_where_float64_does(name):
    args = {k: v for k, v in CASES[name][0].items()}
    low = make_problem(name, **args, dtype="float32")
    high = make_problem(name, **args, dtype="float64")
    p32, p64 = low.init(7), high.init(7)
    for key in p64:
        assert p32[key].dtype == torch.float32
        torch.testing.assert_close(p32[key], p64[key].float())
    value = low.loss(p32, low.sample(gen(0), 4))
    assert value.dtype == torch.float32 and bool(torch.isfinite(value))
