"""The digits split and the MLP factory of magcore.problems.digits."""

import pytest
import torch

from magcore.problems.digits import (N_CLASSES, N_FEATURES, DigitsSplit,
                                     load_digits_split, make_mlp,
                                     n_parameters)

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def split():
    return load_digits_split(test_fraction=0.2, seed=0)


def test_shapes_dtypes_and_labels(split):
    assert isinstance(split, DigitsSplit)
    n_train, n_test = split.x_train.shape[0], split.x_test.shape[0]
    assert n_train + n_test == 1797
    assert split.x_train.shape[1] == split.x_test.shape[1] == N_FEATURES
    assert split.x_train.dtype == split.x_test.dtype == torch.float32
    assert split.y_train.dtype == split.y_test.dtype == torch.int64
    assert set(split.y_train.tolist()) == set(range(N_CLASSES))
    assert set(split.y_test.tolist()) == set(range(N_CLASSES))


def test_split_is_stratified_and_disjoint(split):
    counts_test = torch.bincount(split.y_test, minlength=N_CLASSES)
    counts_all = counts_test + torch.bincount(split.y_train,
                                              minlength=N_CLASSES)
    share = counts_test.double() / counts_all.double()
    assert bool(((share - 0.2).abs() < 0.02).all())
    # no image appears in both sets: compare the raw pixels
    raw_train = split.x_train.double() * split.scale + split.mean
    raw_test = split.x_test.double() * split.scale + split.mean
    dist = torch.cdist(raw_test, raw_train)
    same = (dist < 1e-3).any(dim=1)
    # the digits contain a few duplicated images; allow at most a handful
    assert int(same.sum()) <= 5


def test_standardized_with_training_statistics(split):
    x = split.x_train.double()
    varying = split.scale != 1
    assert torch.allclose(x.mean(0), torch.zeros(N_FEATURES,
                                                 dtype=torch.float64),
                          atol=1e-5)
    std = x.std(0, correction=0)
    assert torch.allclose(std[varying], torch.ones(int(varying.sum()),
                                                   dtype=torch.float64),
                          atol=1e-5)
    # raw pixels are integers 0..16: undoing the map recovers them
    raw = x * split.scale.double() + split.mean.double()
    assert torch.allclose(raw, raw.round(), atol=1e-3)
    assert float(raw.min()) >= -1e-3 and float(raw.max()) <= 16 + 1e-3
    # at least one pixel is blank in every training image
    assert int((~varying).sum()) >= 1
    assert torch.allclose(x[:, ~varying], torch.zeros(1, dtype=x.dtype))


def test_seed_fixes_the_split_and_changes_it():
    a = load_digits_split(seed=3)
    b = load_digits_split(seed=3)
    c = load_digits_split(seed=4)
    assert torch.equal(a.x_train, b.x_train)
    assert torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.y_test, c.y_test)
    d = load_digits_split(seed=3, dtype=torch.float64)
    assert d.x_train.dtype == torch.float64
    assert torch.allclose(d.x_train.float(), a.x_train, atol=1e-6)


def test_test_fraction_sets_the_size():
    small = load_digits_split(test_fraction=0.1)
    assert abs(small.x_test.shape[0] - 180) <= 5


@pytest.mark.parametrize("kwargs, name", [
    (dict(test_fraction=0.0), "test_fraction"),
    (dict(test_fraction=1.0), "test_fraction"),
    (dict(test_fraction="half"), "test_fraction"),
    (dict(seed=1.5), "seed"),
    (dict(seed=True), "seed"),
    (dict(dtype=torch.int64), "dtype"),
])
def test_bad_arguments_are_named(kwargs, name):
    with pytest.raises(ValueError, match=name):
        load_digits_split(**kwargs)


def test_mlp_shape_parameters_and_seed():
    net = make_mlp((64,), seed=0)
    assert n_parameters(net) == 64 * 64 + 64 + 64 * 10 + 10
    x = torch.randn(7, N_FEATURES)
    assert net(x).shape == (7, N_CLASSES)
    again = make_mlp((64,), seed=0)
    for p, q in zip(net.parameters(), again.parameters()):
        assert torch.equal(p, q)
    other = make_mlp((64,), seed=1)
    assert not torch.equal(net[0].weight, other[0].weight)
    deep = make_mlp((32, 16), activation="relu", dtype=torch.float64)
    assert [type(m).__name__ for m in deep] == [
        "Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert deep[0].weight.dtype == torch.float64
    assert len(make_mlp((), seed=0)) == 1


def test_mlp_seed_leaves_the_global_generator_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    make_mlp((64,), seed=0)
    assert torch.equal(torch.rand(3), expected)
    # without a seed, two nets differ (the global generator moves on)
    a, b = make_mlp((8,)), make_mlp((8,))
    assert not torch.equal(a[0].weight, b[0].weight)


def test_mlp_can_fit_the_digits(split):
    net = make_mlp((64,), seed=0)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(60):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(split.x_train),
                                                 split.y_train)
        loss.backward()
        opt.step()
    with torch.no_grad():
        acc = (net(split.x_test).argmax(1) == split.y_test).double().mean()
    assert float(acc) > 0.9


@pytest.mark.parametrize("kwargs, name", [
    (dict(hidden=(0,)), "hidden"),
    (dict(hidden=(8.0,)), "hidden"),
    (dict(activation="sigmoid"), "activation"),
    (dict(seed="0"), "seed"),
    (dict(dtype=torch.int32), "dtype"),
])
def test_mlp_bad_arguments_are_named(kwargs, name):
    with pytest.raises(ValueError, match=name):
        make_mlp(**kwargs)
