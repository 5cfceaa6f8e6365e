r"""Linear softmax regression with heavy-tailed class imbalance.

The synthetic set of Kunstner et al. (2024, arXiv:2402.19449): the classes
come in :math:`m` groups, and group :math:`i = 0, \dots, m-1` has
:math:`2^i` classes with :math:`2^{m-i}` examples each. Every group holds
:math:`2^m` examples, so there are

.. math::

    n = m\,2^m \text{ examples}, \qquad
    C = \sum_{i=0}^{m-1} 2^i = 2^m - 1 \text{ classes},

and the class frequencies fall from :math:`2^m/n` to :math:`2/n`, a step
approximation of Zipf's law: the most frequent class is :math:`2^{m-1}`
times as frequent as the rarest. The inputs are uniform on
:math:`[0, 1]^d`, independent of the labels, with :math:`d = (m+1)\,2^m`
by default (more features than examples, so the model can fit every
label). Gradient descent fits the frequent classes first and leaves the
rare ones almost untouched for a long time, while sign-like methods make
progress on all groups; with small :math:`m` every method solves the
problem, hence :math:`m \ge 8` by default.

The uniform control keeps the same inputs, :math:`n` and :math:`C` and
deals the labels out in turn, :math:`y_j = j \bmod C`, so every class has
:math:`\lfloor n/C \rfloor` or :math:`\lceil n/C \rceil` examples.
"""

import torch
from torch.func import functional_call

from ._common import (built_with_seed, check_choice, check_int, module_params,
                      seeded)
from .classification import ClassificationProblem

INPUTS = ("uniform", "gaussian")


def heavy_tailed_labels(m):
    r"""The labels of the heavy-tailed set, grouped by frequency.

    Class :math:`k` belongs to group :math:`i` when
    :math:`2^i - 1 \le k \le 2^{i+1} - 2`; group :math:`i` has
    :math:`2^i` classes of :math:`2^{m-i}` examples each.

    Args:
        m: the number of groups, >= 1.

    Returns:
        ``(labels, class_group)``: int64 tensors of shape ``(m 2^m,)``
        (the labels, sorted) and ``(2^m - 1,)`` (the group of each class).

    Example:
        >>> labels, group = heavy_tailed_labels(2)
        >>> labels.tolist(), group.tolist()
        ([0, 0, 0, 0, 1, 1, 2, 2], [0, 1, 1])
    """
    m = check_int("m", m)
    n_classes = 2 ** m - 1
    class_group = torch.cat([torch.full((2 ** i,), i, dtype=torch.int64)
                             for i in range(m)])
    counts = 2 ** (m - class_group)
    labels = torch.repeat_interleave(torch.arange(n_classes), counts)
    return labels, class_group


class ImbalancedSoftmax(ClassificationProblem):
    r"""Linear softmax regression on the heavy-tailed synthetic set.

    .. math::

        L(W, b) = \frac1n \sum_{j=1}^n \left(-z_{j y_j} +
        \log \sum_{c=1}^{C} e^{z_{jc}}\right), \qquad z_j = W x_j + b,

    with :math:`W \in \mathbb R^{C\times d}` (see the module docstring for
    the data). Besides ``"loss"`` and ``"accuracy"``, ``metrics()``
    records ``"loss_group_i"``, the mean loss of the examples whose class
    is in frequency group :math:`i` (group 0 the most frequent), so that
    learning curves can be drawn per group. The initial parameters are
    PyTorch's default for a linear layer, uniform on
    :math:`(-1/\sqrt d, 1/\sqrt d)`; the inputs depend on ``data_seed``
    only.

    Args:
        m: the number of frequency groups, >= 1 (default 8: 2,048
            examples, 255 classes, 2,304 features, 587,775 parameters).
        dim: the input dimension :math:`d`, default :math:`(m+1)\,2^m`.
        inputs: ``"uniform"`` on :math:`[0, 1]^d` or ``"gaussian"``
            standard normal.
        bias: whether the model has the bias :math:`b`.
        data_seed: the seed of the inputs.
        dtype: ``"float32"`` or ``"float64"``.
        device: where the tensors live (not part of ``config()``).

    Attributes:
        class_counts: the number of examples of each class.
        class_group: the frequency group of each class.
        n_classes: :math:`C`.
    """

    name = "softmax-imbalanced"

    def __init__(self, m=8, dim=None, inputs="uniform", bias=True,
                 data_seed=0, dtype="float32", device=None):
        self.m = check_int("m", m)
        self.dim = (self.m + 1) * 2 ** self.m if dim is None \
            else check_int("dim", dim)
        self.inputs = check_choice("inputs", inputs, INPUTS)
        if not isinstance(bias, bool):
            raise ValueError(f"Invalid bias: {bias!r} (expected a bool)")
        self.bias = bias
        data_seed = check_int("data_seed", data_seed, minimum=0)
        labels, self.class_group = heavy_tailed_labels(self.m)
        self.n_classes = self.class_group.numel()
        labels = self._labels(labels)
        self.class_counts = torch.bincount(labels, minlength=self.n_classes)

        gen = seeded(data_seed)
        shape = (labels.numel(), self.dim)
        if self.inputs == "uniform":
            x = torch.rand(shape, dtype=torch.float64, generator=gen)
        else:
            x = torch.randn(shape, dtype=torch.float64, generator=gen)
        order = torch.randperm(labels.numel(), generator=gen)
        self._set_data(x, labels[order], None, None, dtype, device)

        group = self.class_group.to(self.device)[self.y_train]
        onehot = torch.nn.functional.one_hot(group, self.m).to(self.dtype)
        self._group_mean = (onehot / onehot.sum(0)).T
        self.module = built_with_seed(self._build, 0)
        self.n_params = sum(p.numel() for p in self.module.parameters())
        self._args = {"m": self.m, "dim": self.dim, "inputs": self.inputs,
                      "bias": self.bias, "data_seed": data_seed,
                      "dtype": self._dtype_name}

    def _labels(self, labels):
        """The labels of the examples, given the heavy-tailed ones."""
        return labels

    def _build(self):
        return torch.nn.Linear(self.dim, self.n_classes, bias=self.bias,
                               dtype=torch.float64)

    def init(self, seed):
        module = built_with_seed(self._build, seed)
        return module_params(module, self.dtype, self.device)

    def logits(self, params, x):
        return functional_call(self.module, params, (x,))

    def metric_tensors(self, params):
        """``"loss"``, ``"accuracy"`` and ``"loss_group_i"`` for each group
        :math:`i`, as 0-d tensors (pure, so it can be vmapped)."""
        losses, hits = self._evaluate(params, self.x_train, self.y_train)
        out = {"loss": losses.mean(), "accuracy": hits.mean()}
        per_group = self._group_mean @ losses
        for i in range(self.m):
            out[f"loss_group_{i}"] = per_group[i]
        return out


class UniformSoftmax(ImbalancedSoftmax):
    r"""The uniform control of :class:`ImbalancedSoftmax`.

    The same inputs, number of examples :math:`n = m\,2^m` and number of
    classes :math:`C = 2^m - 1`, with the labels dealt out in turn
    (:math:`y_j = j \bmod C`, before shuffling), so the classes are as
    balanced as :math:`n/C` allows. ``"loss_group_i"`` averages over the
    same classes as in the imbalanced problem, which here are no more
    frequent than the others: the curves of the groups should coincide up
    to noise.

    Args:
        m: the size parameter, as in :class:`ImbalancedSoftmax`.
        dim: the input dimension, default :math:`(m+1)\,2^m`.
        inputs: ``"uniform"`` or ``"gaussian"``.
        bias: whether the model has a bias.
        data_seed: the seed of the inputs.
        dtype: ``"float32"`` or ``"float64"``.
        device: where the tensors live (not part of ``config()``).
    """

    name = "softmax-uniform"

    def _labels(self, labels):
        return torch.arange(labels.numel()) % self.n_classes
