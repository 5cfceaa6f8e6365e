r"""Classification problems on fixed data: digits and MNIST-1D.

Every problem here minimizes the mean cross-entropy of a model on a fixed
training set :math:`\{(x_j, y_j)\}_{j=1}^n`,

.. math::

    L(\theta) = \frac1n \sum_{j=1}^n \ell(z_\theta(x_j), y_j), \qquad
    \ell(z, y) = -z_y + \log \sum_{c} e^{z_c},

with :math:`z_\theta(x)` the logits. A minibatch is drawn with replacement
(:func:`~magcore.problems.minibatch_indices`), so its loss is an unbiased
estimate of :math:`L`. The model is evaluated with
``torch.func.functional_call`` on a template module whose parameters are
replaced by the dict passed in, which keeps :meth:`loss` a pure function
that ``torch.func.vmap`` and ``torch.func.grad`` can transform.

The data come from packages: scikit-learn's bundled digits
(:func:`~magcore.problems.load_digits_split`) and MNIST-1D generated
locally by the ``mnist1d`` package (:func:`load_mnist1d`); nothing is
downloaded. Each data set is generated once per process and kept in
memory.
"""

import functools
import random

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call

from ._common import (built_with_seed, check_choice, check_device,
                      check_dtype, check_float, check_int, module_params,
                      to_floats)
from .base import Problem, minibatch_indices
from .digits import ACTIVATIONS, load_digits_split, make_mlp

MNIST1D_LENGTH = 40
MNIST1D_CLASSES = 10


class ClassificationProblem(Problem):
    r"""A model trained with the cross-entropy on a fixed training set.

    Subclasses build the data and the model and implement :meth:`logits`;
    this class supplies the batches, the loss and the metrics: ``"loss"``
    and ``"accuracy"`` on the full training set and, when there is a test
    set, ``"test_loss"`` and ``"test_accuracy"``.

    A batch is ``(x, y)``: inputs and integer labels of ``batch_size``
    examples drawn with replacement, or the whole training set for
    ``batch_size=None``.
    """

    def _set_data(self, x_train, y_train, x_test, y_test, dtype, device):
        self.dtype, self._dtype_name = check_dtype(dtype)
        self.device = check_device(device)
        self.x_train = x_train.to(dtype=self.dtype, device=self.device)
        self.y_train = y_train.to(device=self.device)
        self.n_train = int(self.y_train.shape[0])
        self.x_test = self.y_test = None
        if x_test is not None:
            self.x_test = x_test.to(dtype=self.dtype, device=self.device)
            self.y_test = y_test.to(device=self.device)

    def logits(self, params, x):
        """The logits of the inputs ``x`` at ``params``."""
        raise NotImplementedError

    def per_example_loss(self, logits, y):
        """The cross-entropy of each example (no reduction)."""
        return F.cross_entropy(logits, y, reduction="none")

    def predictions(self, logits):
        """The predicted labels."""
        return logits.argmax(-1)

    def sample(self, generator, batch_size):
        self.check_batch_size(batch_size)
        idx = minibatch_indices(generator, self.n_train, batch_size)
        idx = idx.to(self.device)
        return self.x_train[idx], self.y_train[idx]

    def loss(self, params, batch):
        """The mean cross-entropy of ``batch = (x, y)``."""
        x, y = batch
        return self.per_example_loss(self.logits(params, x), y).mean()

    def _evaluate(self, params, x, y):
        z = self.logits(params, x)
        hits = (self.predictions(z) == y).to(z.dtype)
        return self.per_example_loss(z, y), hits

    def metric_tensors(self, params):
        """The metrics as 0-d tensors (pure, so it can be vmapped over
        stacked parameters)."""
        losses, hits = self._evaluate(params, self.x_train, self.y_train)
        out = {"loss": losses.mean(), "accuracy": hits.mean()}
        if self.x_test is not None:
            losses, hits = self._evaluate(params, self.x_test, self.y_test)
            out["test_loss"] = losses.mean()
            out["test_accuracy"] = hits.mean()
        return out

    def metrics(self, params):
        """:meth:`metric_tensors` as floats."""
        with torch.no_grad():
            return to_floats(self.metric_tensors(params))

    def config(self):
        return {"name": self.name, **self._args}


class ModuleProblem(ClassificationProblem):
    """A classification problem whose model is a ``torch.nn.Module``.

    :meth:`build_module` makes the module; :meth:`init` builds it with the
    global generator seeded by the seed (PyTorch's default initialization,
    in float64, then cast to the problem's dtype) and returns its
    parameters as a dict; :meth:`logits` calls the template module with
    the given dict through ``torch.func.functional_call``.
    """

    def build_module(self):
        """A fresh module (float64); its parameters are the problem's."""
        raise NotImplementedError

    def _set_module(self):
        self.module = built_with_seed(self.build_module, 0)
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.n_params = sum(p.numel() for p in self.module.parameters())

    def init(self, seed):
        module = built_with_seed(self.build_module, seed)
        return module_params(module, self.dtype, self.device)

    def transform_input(self, x):
        """The input as the module takes it (unchanged by default)."""
        return x

    def logits(self, params, x):
        return functional_call(self.module, params,
                               (self.transform_input(x),))


@functools.lru_cache(maxsize=4)
def _digits(data_seed, test_fraction):
    return load_digits_split(test_fraction=test_fraction, seed=data_seed,
                             dtype=torch.float64)


class _DigitsData:
    def _load_digits(self, data_seed, test_fraction):
        data_seed = check_int("data_seed", data_seed, minimum=0)
        test_fraction = check_float("test_fraction", test_fraction)
        split = _digits(data_seed, test_fraction)
        return split, {"data_seed": data_seed,
                       "test_fraction": test_fraction}


class DigitsLogistic(ClassificationProblem, _DigitsData):
    r"""Binary logistic regression on the digits: one digit against the
    rest.

    .. math::

        L(w, b) = \frac1n \sum_{j=1}^n \log\left(1 + e^{-s_j (w^\top x_j
        + b)}\right), \qquad s_j = \begin{cases} +1 & y_j = \text{digit}
        \\ -1 & \text{otherwise,} \end{cases}

    on the 64 standardized pixels (:func:`load_digits_split`). The loss is
    convex and smooth; the classes are imbalanced about 1 to 9. The
    initial :math:`w, b` are uniform on :math:`(-1/8, 1/8)` (PyTorch's
    default for a linear layer with 64 inputs). The labels of a batch are
    0/1 (1 for the chosen digit).

    Args:
        digit: the positive class, 0 to 9.
        data_seed: the seed of the train/test split.
        test_fraction: the share of each class held out.
        dtype: ``"float32"`` or ``"float64"``.
        device: where the tensors live (not part of ``config()``).
    """

    name = "digits-logistic"

    def __init__(self, digit=0, data_seed=0, test_fraction=0.2,
                 dtype="float32", device=None):
        digit = check_int("digit", digit, minimum=0)
        if digit > 9:
            raise ValueError(f"Invalid digit: {digit!r} (expected 0 to 9)")
        split, args = self._load_digits(data_seed, test_fraction)
        self._set_data(split.x_train, (split.y_train == digit).long(),
                       split.x_test, (split.y_test == digit).long(),
                       dtype, device)
        self.n_params = split.x_train.shape[1] + 1
        self._args = {"digit": digit, **args, "dtype": self._dtype_name}

    def init(self, seed):
        linear = built_with_seed(
            lambda: torch.nn.Linear(64, 1, dtype=torch.float64), seed)
        params = module_params(linear, self.dtype, self.device)
        return {"weight": params["weight"][0], "bias": params["bias"][0]}

    def logits(self, params, x):
        """The scalar logit :math:`w^\\top x + b` of each example."""
        return x @ params["weight"] + params["bias"]

    def per_example_loss(self, logits, y):
        return F.binary_cross_entropy_with_logits(
            logits, y.to(logits.dtype), reduction="none")

    def predictions(self, logits):
        return (logits > 0).long()


class DigitsMLP(ModuleProblem, _DigitsData):
    r"""A multilayer perceptron on the digits, from
    :func:`~magcore.problems.make_mlp`.

    .. math::

        z_\theta(x) = W_L\,\sigma(\cdots\sigma(W_1 x + b_1)\cdots) + b_L,

    with the cross-entropy over the ten classes. With ``hidden=()`` this
    is multinomial (softmax) logistic regression, a convex problem (see
    :class:`DigitsSoftmax`).

    Args:
        hidden: the widths of the hidden layers.
        activation: ``"tanh"``, ``"relu"`` or ``"gelu"``.
        data_seed: the seed of the train/test split.
        test_fraction: the share of each class held out.
        dtype: ``"float32"`` or ``"float64"``.
        device: where the tensors live (not part of ``config()``).
    """

    name = "digits-mlp"

    def __init__(self, hidden=(64,), activation="tanh", data_seed=0,
                 test_fraction=0.2, dtype="float32", device=None):
        self.hidden = tuple(hidden)
        for width in self.hidden:
            check_int("hidden", width)
        self.activation = check_choice("activation", activation,
                                       ACTIVATIONS)
        split, args = self._load_digits(data_seed, test_fraction)
        self._set_data(split.x_train, split.y_train, split.x_test,
                       split.y_test, dtype, device)
        self._set_module()
        self._args = {"hidden": list(self.hidden),
                      "activation": self.activation, **args,
                      "dtype": self._dtype_name}

    def build_module(self):
        return make_mlp(self.hidden, self.activation, dtype=torch.float64)


class DigitsSoftmax(DigitsMLP):
    r"""Softmax regression on the digits: :class:`DigitsMLP` with no
    hidden layer.

    .. math::

        L(W, b) = \frac1n \sum_{j=1}^n \left(-z_{y_j} + \log \sum_{c=0}^9
        e^{z_c}\right), \qquad z = W x_j + b,

    convex in :math:`(W, b)`; 650 parameters.

    Args:
        data_seed: the seed of the train/test split.
        test_fraction: the share of each class held out.
        dtype: ``"float32"`` or ``"float64"``.
        device: where the tensors live (not part of ``config()``).
    """

    name = "digits-softmax"

    def __init__(self, data_seed=0, test_fraction=0.2, dtype="float32",
                 device=None):
        super().__init__(hidden=(), data_seed=data_seed,
                         test_fraction=test_fraction, dtype=dtype,
                         device=device)
        self._args = {"data_seed": self._args["data_seed"],
                      "test_fraction": self._args["test_fraction"],
                      "dtype": self._dtype_name}


@functools.lru_cache(maxsize=4)
def _mnist1d(n_samples, data_seed):
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = n_samples
    args.seed = data_seed
    # make_dataset reseeds Python's and NumPy's global generators; put
    # them back as they were.
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        data = make_dataset(args)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    return tuple(torch.as_tensor(np.asarray(data[key]), dtype=dtype)
                 for key, dtype in (("x", torch.float64),
                                    ("y", torch.int64),
                                    ("x_test", torch.float64),
                                    ("y_test", torch.int64)))


def load_mnist1d(n_samples=5000, data_seed=42):
    r"""MNIST-1D, generated locally by the ``mnist1d`` package.

    Each example is a 1-D signal of 40 values made from one of ten digit
    templates by random padding, shear, translation, scaling and
    correlated plus i.i.d. noise; the whole set is centred and scaled to
    standard deviation 1. ``mnist1d.data.make_dataset`` is run with the
    package's default arguments except ``num_samples`` and ``seed``; 80%
    of the examples are the training set, in the package's order. The
    package's defaults are ``n_samples=5000, data_seed=42`` (4,000
    training and 1,000 test examples); generating them takes one to a
    few seconds on one core. The result is kept in memory for the
    process; the global Python and NumPy generators are left as they
    were.

    Args:
        n_samples: the number of examples, a multiple of 10 (the same
            number of each digit) and at least 10.
        data_seed: the seed of the generation.

    Returns:
        ``(x_train, y_train, x_test, y_test)``: float64 inputs of shape
        ``(n, 40)`` and int64 labels 0 to 9 (shared, cached tensors: do
        not modify them in place).

    Raises:
        ValueError: for a bad ``n_samples`` or ``data_seed``.
        ImportError: when ``mnist1d`` is not installed.
    """
    n_samples = check_int("n_samples", n_samples, minimum=10)
    if n_samples % 10:
        raise ValueError(f"Invalid n_samples: {n_samples!r} (must be a "
                         "multiple of 10)")
    data_seed = check_int("data_seed", data_seed, minimum=0)
    try:
        import mnist1d  # noqa: F401
    except ImportError as err:
        raise ImportError("load_mnist1d needs the mnist1d package "
                          "(pip install mnist1d)") from err
    return _mnist1d(n_samples, data_seed)


class _MNIST1DData:
    def _load_mnist1d(self, n_samples, data_seed, dtype, device):
        x, y, x_test, y_test = load_mnist1d(n_samples, data_seed)
        self._set_data(x, y, x_test, y_test, dtype, device)
        return {"n_samples": n_samples, "data_seed": data_seed}


class MNIST1DMLP(ModuleProblem, _MNIST1DData):
    r"""A multilayer perceptron on MNIST-1D (:func:`load_mnist1d`).

    .. math::

        z_\theta(x) = W_L\,\sigma(\cdots\sigma(W_1 x + b_1)\cdots) + b_L,
        \qquad x \in \mathbb R^{40},

    with the cross-entropy over ten classes; ``hidden=(100, 100)`` with
    ReLU is the MLP of the MNIST-1D paper (about 15,000 parameters).

    Args:
        n_samples: the number of generated examples (80% for training).
        hidden: the widths of the hidden layers.
        activation: ``"relu"``, ``"tanh"`` or ``"gelu"``.
        data_seed: the seed of the data generation.
        dtype: ``"float32"`` or ``"float64"``.
        device: where the tensors live (not part of ``config()``).
    """

    name = "mnist1d-mlp"

    def __init__(self, n_samples=2000, hidden=(100, 100), activation="relu",
                 data_seed=42, dtype="float32", device=None):
        self.hidden = tuple(hidden)
        for width in self.hidden:
            check_int("hidden", width)
        self.activation = check_choice("activation", activation,
                                       ACTIVATIONS)
        args = self._load_mnist1d(n_samples, data_seed, dtype, device)
        self._set_module()
        self._args = {**args, "hidden": list(self.hidden),
                      "activation": self.activation,
                      "dtype": self._dtype_name}

    def build_module(self):
        sizes = (MNIST1D_LENGTH,) + self.hidden + (MNIST1D_CLASSES,)
        layers = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(torch.nn.Linear(n_in, n_out, dtype=torch.float64))
            if i < len(sizes) - 2:
                layers.append(ACTIVATIONS[self.activation]())
        return torch.nn.Sequential(*layers)


class MNIST1DCNN(ModuleProblem, _MNIST1DData):
    r"""A small 1-D convolutional network on MNIST-1D.

    Three convolutions with ReLU, then a linear layer:

    .. math::

        x \in \mathbb R^{1\times 40}
        \xrightarrow{\text{conv } 5,\ /2}
        \mathbb R^{C\times 19}
        \xrightarrow{\text{conv } 3,\ /2}
        \mathbb R^{C\times 10}
        \xrightarrow{\text{conv } 3,\ /2}
        \mathbb R^{C\times 5}
        \xrightarrow{\text{flatten, linear}} \mathbb R^{10},

    each convolution with stride 2 and padding 1, :math:`C` = ``channels``
    (25 in the MNIST-1D paper's network, which this follows in shape).

    Args:
        n_samples: the number of generated examples (80% for training).
        channels: the channels :math:`C` of every convolution.
        data_seed: the seed of the data generation.
        dtype: ``"float32"`` or ``"float64"``.
        device: where the tensors live (not part of ``config()``).
    """

    name = "mnist1d-cnn"

    def __init__(self, n_samples=2000, channels=16, data_seed=42,
                 dtype="float32", device=None):
        self.channels = check_int("channels", channels)
        args = self._load_mnist1d(n_samples, data_seed, dtype, device)
        self._set_module()
        self._args = {**args, "channels": self.channels,
                      "dtype": self._dtype_name}

    def build_module(self):
        c, f64 = self.channels, torch.float64
        return torch.nn.Sequential(
            torch.nn.Conv1d(1, c, 5, stride=2, padding=1, dtype=f64),
            torch.nn.ReLU(),
            torch.nn.Conv1d(c, c, 3, stride=2, padding=1, dtype=f64),
            torch.nn.ReLU(),
            torch.nn.Conv1d(c, c, 3, stride=2, padding=1, dtype=f64),
            torch.nn.ReLU(),
            torch.nn.Flatten(),
            torch.nn.Linear(5 * c, MNIST1D_CLASSES, dtype=f64))

    def transform_input(self, x):
        """Add the channel dimension: ``(n, 40)`` to ``(n, 1, 40)``."""
        return x.unsqueeze(-2)
