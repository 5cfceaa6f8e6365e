r"""Scikit-learn's handwritten digits as tensors, and a small MLP for them.

The data are the 1,797 greyscale images of 8x8 pixels (64 features with
values 0 to 16, ten classes) that ship with scikit-learn
(:func:`sklearn.datasets.load_digits`), so nothing is downloaded. This
module splits them, standardizes the features with the training set's
statistics and returns tensors; it knows nothing of optimizers.

scikit-learn is needed only here and is imported when the data are loaded,
so the rest of :mod:`magcore` works without it.
"""

import math
from dataclasses import dataclass

import torch

N_FEATURES = 64
N_CLASSES = 10
ACTIVATIONS = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh,
               "gelu": torch.nn.GELU}


@dataclass(frozen=True)
class DigitsSplit:
    """A train/test split of the digits, standardized.

    Attributes:
        x_train: float tensor of shape ``(n_train, 64)``.
        y_train: int64 tensor of shape ``(n_train,)``, labels 0 to 9.
        x_test: float tensor of shape ``(n_test, 64)``.
        y_test: int64 tensor of shape ``(n_test,)``.
        mean: the training set's mean of each raw feature, shape ``(64,)``.
        scale: the training set's standard deviation of each raw feature,
            with 1 in place of 0 for a feature that is constant there
            (some border pixels are always blank), shape ``(64,)``.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    mean: torch.Tensor
    scale: torch.Tensor


def load_digits_split(test_fraction=0.2, seed=0, dtype=torch.float32):
    r"""Load the digits, split them and standardize the features.

    The split is stratified: each class is shuffled with a generator seeded
    by ``seed`` and its first ``round(test_fraction * n_class)`` images go
    to the test set, so both sets keep the class proportions. The features
    are then mapped to :math:`(x - \mu) / s` with the training set's mean
    :math:`\mu` and standard deviation :math:`s` (population form, with
    :math:`s = 1` where a feature is constant on the training set), so that
    no statistic of the test set leaks into the training data.

    Args:
        test_fraction: share of each class held out, in (0, 1).
        seed: integer seed of the shuffle; the same seed gives the same
            split on every machine.
        dtype: floating dtype of the features (``torch.float32`` or
            ``torch.float64``).

    Returns:
        A :class:`DigitsSplit`.

    Raises:
        ValueError: for a ``test_fraction`` outside (0, 1), a seed that is
            not an integer, or a non-floating ``dtype``.
        ImportError: if scikit-learn is not installed.

    Example:
        >>> data = load_digits_split(test_fraction=0.2, seed=0)
        >>> tuple(data.x_train.shape), tuple(data.x_test.shape)
        ((1438, 64), (359, 64))
    """
    try:
        fraction = float(test_fraction)
    except (TypeError, ValueError):
        raise ValueError(f"Invalid test_fraction: {test_fraction!r} "
                         "(expected a number)") from None
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"Invalid test_fraction: {test_fraction!r} "
                         "(must be in (0, 1))")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"Invalid seed: {seed!r} (expected an integer)")
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValueError(f"Invalid dtype: {dtype!r} (need a floating dtype)")
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise ImportError("load_digits_split needs scikit-learn "
                          "(pip install scikit-learn)") from err

    raw = load_digits()
    x = torch.as_tensor(raw.data, dtype=torch.float64)
    y = torch.as_tensor(raw.target, dtype=torch.int64)

    gen = torch.Generator().manual_seed(seed)
    test_idx, train_idx = [], []
    for label in range(N_CLASSES):
        members = torch.nonzero(y == label).flatten()
        members = members[torch.randperm(members.numel(), generator=gen)]
        n_test = int(round(fraction * members.numel()))
        test_idx.append(members[:n_test])
        train_idx.append(members[n_test:])
    train_idx = torch.cat(train_idx)
    test_idx = torch.cat(test_idx)
    train_idx = train_idx[torch.randperm(train_idx.numel(), generator=gen)]
    test_idx = test_idx[torch.randperm(test_idx.numel(), generator=gen)]
    if train_idx.numel() == 0 or test_idx.numel() == 0:
        raise ValueError(f"Invalid test_fraction: {test_fraction!r} "
                         "(leaves an empty train or test set)")

    mean = x[train_idx].mean(0)
    scale = x[train_idx].std(0, correction=0)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))

    def standardize(rows):
        return ((x[rows] - mean) / scale).to(dtype)

    return DigitsSplit(standardize(train_idx), y[train_idx].clone(),
                       standardize(test_idx), y[test_idx].clone(),
                       mean.to(dtype), scale.to(dtype))


def make_mlp(hidden=(64,), activation="tanh", seed=None,
             dtype=torch.float32):
    """A multilayer perceptron from the 64 pixels to the 10 class logits.

    The layers are ``Linear(64, hidden[0])``, the activation, ...,
    ``Linear(hidden[-1], 10)``, with PyTorch's default initialization; with
    ``hidden=(64,)`` this is the 64-64-10 network. The output is the logits
    (use ``torch.nn.functional.cross_entropy`` as the loss).

    Args:
        hidden: widths of the hidden layers, each a positive integer; an
            empty sequence gives multinomial logistic regression.
        activation: ``"tanh"``, ``"relu"`` or ``"gelu"``.
        seed: integer seed of the initialization, or ``None`` to draw from
            the global generator. A seed leaves the global generator as it
            was.
        dtype: floating dtype of the weights.

    Returns:
        A :class:`torch.nn.Sequential`.

    Raises:
        ValueError: for a non-positive or non-integer width, an unknown
            activation, a seed that is not an integer or a non-floating
            ``dtype``.

    Example:
        >>> net = make_mlp((64,), seed=0)
        >>> sum(p.numel() for p in net.parameters())
        4810
    """
    hidden = tuple(hidden)
    for width in hidden:
        if (isinstance(width, bool) or not isinstance(width, int)
                or width < 1):
            raise ValueError(f"Invalid hidden: {hidden!r} (widths must be "
                             "positive integers)")
    if activation not in ACTIVATIONS:
        raise ValueError(f"Invalid activation: {activation!r} (expected "
                         f"one of {tuple(ACTIVATIONS)})")
    if seed is not None and (isinstance(seed, bool)
                             or not isinstance(seed, int)):
        raise ValueError(f"Invalid seed: {seed!r} (expected an integer "
                         "or None)")
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValueError(f"Invalid dtype: {dtype!r} (need a floating dtype)")

    sizes = (N_FEATURES,) + hidden + (N_CLASSES,)

    def build():
        layers = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(torch.nn.Linear(n_in, n_out, dtype=dtype))
            if i < len(sizes) - 2:
                layers.append(ACTIVATIONS[activation]())
        return torch.nn.Sequential(*layers)

    if seed is None:
        return build()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def n_parameters(model):
    """The number of scalar parameters of ``model``."""
    return sum(math.prod(p.shape) for p in model.parameters())
