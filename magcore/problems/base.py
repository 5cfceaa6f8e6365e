r"""The contract between a training problem and the sweep engine.

A :class:`Problem` is a loss in *functional* form: the parameters are a
dictionary of tensors passed in, never stored on a module, and the loss is
a pure function of them and of a batch. That is what lets the sweep engine
train many configurations at once with ``torch.func.vmap`` over stacked
parameters, and check that the result equals training each one alone.

A problem knows nothing of optimizers or sweeps. It supplies:

* :meth:`Problem.init` -- the starting parameters for a seed;
* :meth:`Problem.sample` -- a minibatch drawn with a given generator
  (``None`` as the size means the full batch, where that exists);
* :meth:`Problem.loss` -- the mean loss of a batch, differentiable and free
  of in-place writes, Python branches on values and ``.item()`` calls, so
  that ``vmap`` and ``grad`` can transform it;
* :meth:`Problem.metrics` -- what a run records at a checkpoint, always
  with the key ``"loss"`` (the full training loss, or the exact objective);
* :meth:`Problem.config` -- a JSON-serialisable description, part of the
  key under which results are stored.
"""

import torch


class Problem:
    """Base class of the problems that the sweep engine trains.

    Subclasses set :attr:`name` and implement the five methods below. A
    problem is deterministic given its constructor arguments: the same
    seed gives the same initial parameters, and the same generator state
    the same batch.

    Attributes:
        name: a short identifier, e.g. ``"digits-mlp"``.
        n_train: the number of training examples, or ``None`` for a
            problem whose batches are drawn from a distribution (then a
            batch size is a sample count, and there is no full batch).
    """

    name = "problem"
    n_train = None

    def init(self, seed):
        """Initial parameters, a ``dict`` of tensors, for ``seed``."""
        raise NotImplementedError

    def sample(self, generator, batch_size):
        """A batch (a tuple of tensors) drawn with ``generator``.

        Args:
            generator: a ``torch.Generator``; the only source of
                randomness.
            batch_size: an int >= 1, or ``None`` for the full batch
                (only when ``n_train`` is not ``None``).
        """
        raise NotImplementedError

    def loss(self, params, batch):
        """The mean loss of ``batch`` at ``params``, a 0-d tensor."""
        raise NotImplementedError

    def metrics(self, params):
        """A ``dict`` of floats measured at ``params``; has ``"loss"``."""
        raise NotImplementedError

    def config(self):
        """A JSON-serialisable ``dict`` that identifies this problem."""
        raise NotImplementedError

    def check_batch_size(self, batch_size):
        """Raise ``ValueError`` unless ``batch_size`` suits the problem."""
        if batch_size is None:
            if self.n_train is None:
                raise ValueError(
                    f"Invalid batch_size: None ({self.name} has no full "
                    "batch; give a sample count)")
            return
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) \
                or batch_size < 1:
            raise ValueError(
                f"Invalid batch_size: {batch_size!r} (expected an int >= 1 "
                "or None)")


def minibatch_indices(generator, n, batch_size):
    """Indices of a minibatch of ``n`` examples, drawn with replacement.

    ``batch_size=None`` gives ``arange(n)``, the full batch. Drawing with
    replacement keeps every batch size up to and beyond ``n`` meaningful
    and makes the batches independent, as the closed-form batch models of
    the book assume.
    """
    if batch_size is None:
        return torch.arange(n)
    return torch.randint(n, (batch_size,), generator=generator)
