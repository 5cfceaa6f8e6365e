r"""A problem whose runs all start from given parameters (a checkpoint).

The sweep engine starts run :math:`i` from ``problem.init(seed_i)``. To
study what happens *during* training (the best learning rate of a few
steps taken from a point reached earlier, say) every run must start from
the same parameters :math:`\theta_c` instead. :class:`FixedStart` wraps a
problem and replaces its :meth:`~FixedStart.init` by a copy of
:math:`\theta_c`; the batches, the loss and the metrics are the wrapped
problem's. The seed of a run then decides its batches only.

Its :meth:`~FixedStart.config` holds the wrapped problem's config, a
label and a SHA-256 digest of :math:`\theta_c`, so results stored for
one start are never read for another.

NOTE: the result store keys its entries with the source of the module
that defines the problem's class, which for a wrapped problem is this
module; an edit to the wrapped problem's own module does not make stored
results of a :class:`FixedStart` stale. Clear such results by hand.
"""

import hashlib

import torch

from .base import Problem

__all__ = ["FixedStart", "params_digest"]


def params_digest(params):
    """The first 16 hex digits of a SHA-256 of a dict of tensors.

    The digest covers the names, dtypes, shapes and values (the bytes of
    each tensor on the CPU, in name order).
    """
    sha = hashlib.sha256()
    for name in sorted(params):
        t = params[name].detach().cpu().contiguous()
        sha.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        sha.update(t.numpy().tobytes())
    return sha.hexdigest()[:16]


class FixedStart(Problem):
    r"""``problem`` with every run starting from ``params``.

    Args:
        problem: the :class:`~magcore.problems.Problem` to wrap.
        params: a ``dict`` of tensors with the names, shapes and dtypes
            of ``problem.init(0)``: the start :math:`\theta_c`.
        label: a short non-empty string naming the start in the stored
            config (e.g. ``"loss 0.3"``).

    Raises:
        ValueError: for a problem that is not a ``Problem``, parameters
            that do not match the problem's, or an empty label.

    Example:
        >>> from magcore.problems.toy import LinearRegression
        >>> base = LinearRegression(dim=2)
        >>> start = {k: v + 1 for k, v in base.init(0).items()}
        >>> prob = FixedStart(base, start, "shifted")
        >>> all(torch.equal(prob.init(s)["w"], start["w"]) for s in (0, 7))
        True
        >>> prob.config()["label"]
        'shifted'
    """

    def __init__(self, problem, params, label):
        if not isinstance(problem, Problem):
            raise ValueError(f"Invalid problem: {problem!r} (expected a "
                             "magcore.problems.Problem)")
        if not isinstance(label, str) or not label:
            raise ValueError(f"Invalid label: {label!r} (expected a "
                             "non-empty string)")
        if not isinstance(params, dict):
            raise ValueError(f"Invalid params: {type(params).__name__} "
                             "(expected a dict of tensors)")
        reference = problem.init(0)
        if set(params) != set(reference):
            raise ValueError(f"Invalid params: names {sorted(params)} "
                             f"(expected {sorted(reference)})")
        for name, ref in reference.items():
            value = params[name]
            if not isinstance(value, torch.Tensor) \
                    or value.shape != ref.shape or value.dtype != ref.dtype:
                got = (f"{tuple(value.shape)} {value.dtype}"
                       if isinstance(value, torch.Tensor)
                       else type(value).__name__)
                raise ValueError(
                    f"Invalid params[{name!r}]: {got} (expected "
                    f"{tuple(ref.shape)} {ref.dtype})")
        self.problem = problem
        self.name = problem.name
        self.n_train = problem.n_train
        self.label = label
        self._params = {k: v.detach().clone() for k, v in params.items()}
        self.digest = params_digest(self._params)

    def init(self, seed):
        """A fresh copy of the start, whatever ``seed`` (an int >= 0)."""
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"Invalid seed: {seed!r} (expected an int "
                             ">= 0)")
        return {k: v.clone() for k, v in self._params.items()}

    def sample(self, generator, batch_size):
        """The wrapped problem's batch."""
        return self.problem.sample(generator, batch_size)

    def loss(self, params, batch):
        """The wrapped problem's loss."""
        return self.problem.loss(params, batch)

    def metrics(self, params):
        """The wrapped problem's metrics."""
        return self.problem.metrics(params)

    def check_batch_size(self, batch_size):
        """The wrapped problem's check."""
        self.problem.check_batch_size(batch_size)

    def config(self):
        """``{"start_of": wrapped config, "label": ..., "digest": ...}``.
        """
        return {"start_of": self.problem.config(), "label": self.label,
                "digest": self.digest}
