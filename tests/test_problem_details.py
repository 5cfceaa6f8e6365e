"""What each training problem claims in its docstring, checked one by one.
"""

import inspect
import math
import random

import numpy as np
import pytest
import torch
from torch.func import grad, vmap

from magcore.problems import (PROBLEMS, SIZES, CharTransformer,
                              DigitsLogistic, ImbalancedSoftmax,
                              NoisyQuadraticProblem, PowerLaw,
                              PowerLawProblem, Quadratic, QuadraticProblem,
                              QuarticProblem, UniformSoftmax,
                              heavy_tailed_labels, load_mnist1d, make_mlp,
                              make_problem, problem_names,
                              quadratic_spectrum, random_rotation)
from magcore.problems.transformer import (UNKNOWN, build_vocabulary,
                                          split_tokens)

F64 = torch.float64


def gen(seed):
    return torch.Generator().manual_seed(seed)


# --- quadratics and power laws ------------------------------------------

def test_spectra():
    log = quadratic_spectrum(5, "log", kappa=1e4)
    torch.testing.assert_close(log, torch.tensor(
        [1.0, 10.0, 100.0, 1e3, 1e4], dtype=F64))
    harmonic = quadratic_spectrum(4, "harmonic")
    torch.testing.assert_close(harmonic, 1.0 / torch.arange(1.0, 5.0,
                                                            dtype=F64))
    given = quadratic_spectrum(2, "given", h=[3.0, 0.5])
    assert given.tolist() == [3.0, 0.5]
    assert QuadraticProblem(dim=7, kappa=50.0).condition_number \
        == pytest.approx(50.0)


def test_quadratic_rotation_is_seeded():
    a = QuadraticProblem(dim=8, rotate=True, rotation_seed=3).rotation
    b = QuadraticProblem(dim=8, rotate=True, rotation_seed=3).rotation
    c = QuadraticProblem(dim=8, rotate=True, rotation_seed=4).rotation
    torch.testing.assert_close(a @ a.T, torch.eye(8, dtype=F64))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_haar_rotation_has_no_preferred_sign():
    # the diagonal of a Haar orthogonal matrix has mean zero; QR without
    # the sign correction gives a biased one
    diag = torch.stack([
        torch.diagonal(random_rotation(3, torch.Generator().manual_seed(s)))
        for s in range(400)])
    assert bool((diag.mean(0).abs() < 0.15).all())


def test_quadratic_matches_the_reference_function():
    prob = QuadraticProblem(dim=5, kappa=30.0, rotate=True,
                            rotation_seed=2)
    theta = torch.randn(5, dtype=F64, generator=gen(0))
    zero = (torch.zeros(5, dtype=F64),)
    reference = Quadratic(prob.h, rotation=prob.rotation)
    torch.testing.assert_close(prob.loss({"theta": theta}, zero),
                               reference(theta))
    torch.testing.assert_close(grad(prob.loss)({"theta": theta},
                                               zero)["theta"],
                               prob.hessian @ theta)
    eig = torch.linalg.eigvalsh(prob.hessian)
    torch.testing.assert_close(eig, prob.h.sort().values)
    norm = prob.metrics({"theta": theta})["grad_norm"]
    assert norm == pytest.approx(float((prob.hessian @ theta).norm()))


@pytest.mark.parametrize("kwargs", [
    dict(noise_std=0.7),
    dict(noise_std=0.7, noise="hessian", rotate=True),
])
def test_quadratic_noise_is_the_noisy_problem_noise(kwargs):
    prob = QuadraticProblem(dim=4, kappa=9.0, **kwargs)
    ref = prob.reference_noisy_problem()
    ours = prob.sample(gen(11), 16)[0]
    theirs = ref.sample_noise((), batch_size=16, generator=gen(11))
    torch.testing.assert_close(ours, theirs, rtol=1e-14, atol=1e-15)
    torch.testing.assert_close(ref.noise_covariance, prob.noise_covariance)


def test_minibatch_gradient_is_unbiased_with_covariance_over_b():
    prob = QuadraticProblem(dim=3, kappa=4.0, rotate=True, noise_std=2.0,
                            noise="hessian")
    theta = {"theta": torch.tensor([1.0, -1.0, 0.5], dtype=F64)}
    g = torch.Generator().manual_seed(0)
    batches = torch.stack([prob.sample(g, 4)[0] for _ in range(4000)])
    draws = vmap(grad(prob.loss), in_dims=(None, 0))(theta, (batches,))
    draws = draws["theta"]
    exact = prob.hessian @ theta["theta"]
    cov = torch.cov(draws.T)
    expected = prob.noise_covariance / 4
    # mean within 4 standard errors; covariance within 10%
    se = (expected.diagonal() / 4000).sqrt()
    assert bool(((draws.mean(0) - exact).abs() < 4 * se).all())
    assert torch.allclose(cov, expected, atol=0.1 * expected.abs().max())


def test_noise_free_problems_accept_the_full_batch_and_noisy_ones_not():
    clean = QuadraticProblem(dim=3)
    (eps,) = clean.sample(gen(0), None)
    assert torch.equal(eps, torch.zeros(3, dtype=F64))
    with pytest.raises(ValueError, match="batch_size"):
        QuadraticProblem(dim=3, noise_std=0.1).sample(gen(0), None)


def test_noisy_quadratic_model():
    prob = NoisyQuadraticProblem(dim=6)
    torch.testing.assert_close(prob.h, 1.0 / torch.arange(1.0, 7.0,
                                                          dtype=F64))
    torch.testing.assert_close(prob.noise_covariance, torch.diag(prob.h))
    g = torch.Generator().manual_seed(1)
    draws = torch.stack([prob.sample(g, 8)[0] for _ in range(4000)])
    var = draws.var(0)
    torch.testing.assert_close(var, prob.h / 8, rtol=0.1, atol=0.0)
    theta = torch.ones(6, dtype=F64)
    assert prob.metrics({"theta": theta})["loss"] \
        == pytest.approx(0.5 * float(prob.h.sum()))


def test_power_law_and_quartic_values():
    prob = PowerLawProblem(dim=4, k=3.0, kappa=8.0)
    theta = torch.tensor([1.0, -2.0, 0.5, 0.0], dtype=F64)
    ref = PowerLaw(prob.c, 3.0)
    assert prob.metrics({"theta": theta})["loss"] \
        == pytest.approx(float(ref(theta)))
    zero = (torch.zeros(4, dtype=F64),)
    torch.testing.assert_close(grad(prob.loss)({"theta": theta},
                                               zero)["theta"],
                               ref.gradient(theta))
    quartic = QuarticProblem(dim=4)
    assert quartic.metrics({"theta": theta})["loss"] \
        == pytest.approx(float((theta ** 4).sum()))
    torch.testing.assert_close(grad(quartic.loss)({"theta": theta},
                                                  zero)["theta"],
                               4 * theta ** 3)


def test_quartic_is_l0_l1_smooth_but_not_l_smooth():
    # ||H|| = 12 max x_i^2 <= L0 + L1 ||grad|| with L0 = 12, L1 = 3,
    # while ||H|| itself grows without bound
    for scale in (0.1, 1.0, 10.0, 100.0):
        x = scale * torch.randn(5, dtype=F64, generator=gen(0))
        hess = 12 * float((x ** 2).max())
        assert hess <= 12 + 3 * float((4 * x ** 3).norm())
    assert 12 * 100.0 ** 2 > 1e4


# --- heavy-tailed class imbalance --------------------------------------

def test_heavy_tailed_counts_for_m_8():
    labels, group = heavy_tailed_labels(8)
    assert labels.numel() == 8 * 2 ** 8 == 2048
    assert group.numel() == 2 ** 8 - 1 == 255
    counts = torch.bincount(labels)
    for i in range(8):
        members = counts[group == i]
        assert members.numel() == 2 ** i
        assert bool((members == 2 ** (8 - i)).all())
        assert int(members.sum()) == 2 ** 8
    assert int(counts.max()) // int(counts.min()) == 2 ** 7


def test_imbalanced_and_uniform_problems_share_inputs_and_sizes():
    imb = ImbalancedSoftmax(m=8, dtype="float64")
    uni = UniformSoftmax(m=8, dtype="float64")
    assert imb.n_train == uni.n_train == 2048
    assert imb.n_classes == uni.n_classes == 255
    assert imb.dim == uni.dim == 9 * 256
    assert imb.n_params == 255 * 2304 + 255
    assert torch.equal(imb.class_counts, torch.bincount(imb.y_train))
    assert torch.equal(imb.class_counts.sort().values,
                       torch.bincount(heavy_tailed_labels(8)[0])
                       .sort().values)
    assert set(uni.class_counts.tolist()) == {8, 9}
    assert int((uni.class_counts == 9).sum()) == 8
    assert torch.equal(imb.x_train, uni.x_train)
    assert 0.0 <= float(imb.x_train.min()) \
        and float(imb.x_train.max()) <= 1.0


def test_group_losses_average_to_the_loss():
    prob = ImbalancedSoftmax(m=5, dtype="float64")
    values = prob.metrics(prob.init(0))
    groups = [values[f"loss_group_{i}"] for i in range(5)]
    # every group holds 2^m examples, so the loss is their plain mean
    assert sum(groups) / 5 == pytest.approx(values["loss"], rel=1e-12)
    params = prob.init(0)
    losses, _ = prob._evaluate(params, prob.x_train, prob.y_train)
    rare = prob.class_group[prob.y_train] == 4
    assert values["loss_group_4"] == pytest.approx(
        float(losses[rare].mean()), rel=1e-12)


def test_gradient_descent_leaves_rare_classes_behind():
    prob = ImbalancedSoftmax(m=6, dtype="float64")
    params = prob.init(0)
    batch = prob.sample(gen(0), None)
    start = prob.metrics(params)
    for _ in range(30):
        g = grad(prob.loss)(params, batch)
        params = {k: v - 0.05 * g[k] for k, v in params.items()}
    end = prob.metrics(params)
    drop = [start[f"loss_group_{i}"] - end[f"loss_group_{i}"]
            for i in range(6)]
    assert drop[0] > 5 * max(drop[-1], 0.0)


# --- digits and MNIST-1D -------------------------------------------------

def test_digits_logistic_is_the_binary_cross_entropy():
    prob = DigitsLogistic(digit=3, dtype="float64")
    share = float(prob.y_train.double().mean())
    assert 0.08 < share < 0.12
    params = prob.init(0)
    x, y = prob.sample(gen(0), None)
    z = x @ params["weight"] + params["bias"]
    p = torch.sigmoid(z)
    manual = -(y * p.log() + (1 - y) * (1 - p).log()).mean()
    torch.testing.assert_close(prob.loss(params, (x, y)), manual)
    with pytest.raises(ValueError, match="digit"):
        DigitsLogistic(digit=10)


def test_digits_mlp_starts_at_make_mlp():
    prob = make_problem("digits-mlp", hidden=(8,), dtype="float64")
    net = make_mlp((8,), seed=5, dtype=F64)
    params = prob.init(5)
    for key, value in net.named_parameters():
        assert torch.equal(params[key], value.detach())
    x = prob.x_train[:7]
    torch.testing.assert_close(prob.logits(params, x), net(x))
    assert make_problem("digits-softmax").n_params == 650


def test_mnist1d_is_generated_locally_and_leaves_global_state():
    py_state, np_state = random.getstate(), np.random.get_state()
    x, y, x_test, y_test = load_mnist1d(n_samples=300, data_seed=1)
    assert random.getstate() == py_state
    after = np.random.get_state()
    assert after[0] == np_state[0] and np.array_equal(after[1],
                                                      np_state[1])
    assert x.shape == (240, 40) and x_test.shape == (60, 40)
    assert x.dtype == F64 and y.dtype == torch.int64
    assert set(y.tolist()) <= set(range(10))
    again = load_mnist1d(n_samples=300, data_seed=1)
    assert torch.equal(again[0], x)
    from mnist1d.data import get_dataset_args, make_dataset
    args = get_dataset_args()
    args.num_samples, args.seed = 300, 1
    direct = make_dataset(args)
    np.testing.assert_array_equal(direct["x"], x.numpy())
    with pytest.raises(ValueError, match="n_samples"):
        load_mnist1d(n_samples=305)


def test_mnist1d_cnn_shapes():
    prob = make_problem("mnist1d-cnn", n_samples=100, channels=3)
    x, _ = prob.sample(gen(0), 4)
    assert prob.logits(prob.init(0), x).shape == (4, 10)
    assert prob.n_params == (3 * 5 + 3) + 2 * (9 * 3 + 3) + 15 * 10 + 10


# --- the transformer -----------------------------------------------------

def small_transformer(**kwargs):
    args = dict(n_layers=2, width=16, n_heads=4, context=12, n_train=8,
                dtype="float64")
    return CharTransformer(**{**args, **kwargs})


def test_transformer_is_causal():
    prob = small_transformer()
    params = prob.init(0)
    x = prob.windows[:3, :-1]
    changed = x.clone()
    changed[:, 7] = (changed[:, 7] + 1) % prob.vocab_size
    a, b = prob.logits(params, x), prob.logits(params, changed)
    assert a.shape == (3, 12, prob.vocab_size)
    torch.testing.assert_close(a[:, :7], b[:, :7], rtol=0, atol=0)
    assert not torch.allclose(a[:, 7:], b[:, 7:])


def test_transformer_size_and_initial_loss():
    prob = small_transformer()
    d, v, t = 16, prob.vocab_size, 12
    block = 4 * d + (3 * d * d + 3 * d) + (d * d + d) \
        + (4 * d * d + 4 * d) + (4 * d * d + d)
    assert prob.n_params == 2 * v * d + t * d + 2 * block + 2 * d
    loss = prob.metrics(prob.init(0))["loss"]
    assert abs(loss - math.log(v)) < 0.1


def test_word_tokens_and_vocabulary():
    assert split_tokens("Foo bar, foo!", "word") == ["foo", "bar", ",",
                                                     "foo", "!"]
    assert build_vocabulary(list("abbccc"), 2) == ["c", UNKNOWN]
    assert build_vocabulary(list("abbccc")) == ["c", "b", "a"]
    prob = small_transformer(tokens="word", vocab_size=50)
    assert prob.vocab_size == 50 and prob.vocab[-1] == UNKNOWN
    assert "the" in prob.vocab
    assert int(prob.windows.max()) < 50
    assert prob.config()["vocab_size"] == 50


def test_transformer_windows_are_contiguous_text():
    prob = small_transformer(n_train=4, context=20)
    text = "".join(prob.vocab[i] for i in prob.windows[0].tolist())
    from magcore.problems import pydoc_text
    assert text in pydoc_text()


# --- the registry and bad arguments ------------------------------------

def test_size_presets_name_real_arguments():
    assert set(SIZES) == set(problem_names()) == set(PROBLEMS)
    for name, presets in SIZES.items():
        accepted = set(inspect.signature(PROBLEMS[name].__init__)
                       .parameters)
        assert set(presets) == {"small", "full"}
        for preset in presets.values():
            assert set(preset) <= accepted


@pytest.mark.parametrize("name, kwargs, bad", [
    ("nope", {}, "name"),
    ("quadratic", {"size": "huge"}, "size"),
    ("quadratic", {"dimension": 3}, "dimension"),
    ("quadratic", {"dim": 0}, "dim"),
    ("quadratic", {"kappa": 0.5}, "kappa"),
    ("quadratic", {"spectrum": "flat"}, "spectrum"),
    ("quadratic", {"h": [1.0, 2.0]}, "h"),
    ("quadratic", {"spectrum": "given", "dim": 2, "h": [1.0, -2.0]}, "h"),
    ("quadratic", {"noise": "pink"}, "noise"),
    ("quadratic", {"noise_std": -1.0}, "noise_std"),
    ("quadratic", {"rotate": 1}, "rotate"),
    ("quadratic", {"dtype": "float16"}, "dtype"),
    ("power-law", {"k": 1.0}, "k"),
    ("softmax-imbalanced", {"m": 0}, "m"),
    ("softmax-uniform", {"inputs": "cauchy"}, "inputs"),
    ("digits-mlp", {"hidden": (0,)}, "hidden"),
    ("digits-mlp", {"activation": "sigmoid"}, "activation"),
    ("mnist1d-mlp", {"n_samples": 15}, "n_samples"),
    ("char-transformer", {"n_heads": 3}, "n_heads"),
    ("char-transformer", {"tokens": "bytes"}, "tokens"),
    ("char-transformer", {"vocab_size": 1}, "vocab_size"),
])
def test_bad_arguments_raise_value_errors_naming_them(name, kwargs, bad):
    with pytest.raises(ValueError, match=f"Invalid {bad}|'{bad}'"):
        make_problem(name, **kwargs)


def test_bad_seed_raises():
    prob = make_problem("quadratic")
    for seed in (-1, 1.5, True):
        with pytest.raises(ValueError, match="seed"):
            prob.init(seed)


@pytest.mark.parametrize("kwargs", [
    dict(dim=8, spectrum="harmonic", noise="hessian", noise_std=3.0),
    dict(dim=8, kappa=10.0, rotate=True, noise_std=1.0),
])
def test_expected_sgd_loss_matches_the_mean_over_seeds(kwargs):
    prob = QuadraticProblem(**kwargs)
    lr, batch_size, steps, runs = 0.15, 4, 25, 300
    expected = prob.expected_sgd_loss(lr, batch_size, steps)
    params = {"theta": torch.stack([prob.init(s)["theta"]
                                    for s in range(runs)])}
    generators = [gen(1000 + s) for s in range(runs)]
    step = vmap(grad(prob.loss))
    curve = [vmap(prob.metric_tensors)(params)["loss"]]
    for _ in range(steps):
        eps = torch.stack([prob.sample(g, batch_size)[0]
                           for g in generators])
        g = step(params, (eps,))
        params = {"theta": params["theta"] - lr * g["theta"]}
        curve.append(vmap(prob.metric_tensors)(params)["loss"])
    curve = torch.stack(curve)
    se = curve.std(1) / math.sqrt(runs)
    assert bool(((curve.mean(1) - expected).abs() < 4 * se).all())
    # the check has power: twice the batch size is rejected
    wrong = prob.expected_sgd_loss(lr, 2 * batch_size, steps)
    assert bool(((curve.mean(1) - wrong).abs() > 6 * se).any())
    # noise-free: the formula is the deterministic decay
    clean = QuadraticProblem(dim=3, kappa=4.0)
    torch.testing.assert_close(
        clean.expected_sgd_loss(0.1, None, 2)[-1],
        0.5 * ((1 - 0.1 * clean.h) ** 4 * clean.h).sum())
