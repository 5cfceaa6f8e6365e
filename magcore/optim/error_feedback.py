r"""Sign descent with error feedback (EF-signSGD).

A sign step throws away the size of every coordinate of the gradient.
Error feedback keeps what the step left out and adds it to the next one,
so that over many steps nothing is lost (Karimireddy et al., 2019).
"""

import torch

from .base import (MagcoreOptimizer, check_nonnegative,
                   group_by_device_and_dtype)
from .fused import choose


def ef_sign_reference(params, grads, errors, *, lr, maximize):
    """Plain per-tensor EF-signSGD step; updates ``params`` and ``errors``
    in place."""
    for param, grad, error in zip(params, grads, errors):
        grad = -grad if maximize else grad
        corrected = error.add(grad, alpha=lr)
        scale = torch.linalg.vector_norm(corrected, ord=1) / max(
            corrected.numel(), 1)
        delta = torch.sign(corrected).mul_(scale)
        param.sub_(delta)
        error.copy_(corrected.sub_(delta))


def ef_sign_foreach(params, grads, errors, *, lr, maximize):
    """Multi-tensor EF-signSGD step: the arithmetic of
    :func:`ef_sign_reference` with one kernel launch per operation."""
    for _, (dev_params, dev_grads, dev_errors) in group_by_device_and_dtype(
            params, grads, errors):
        if maximize:
            dev_grads = torch._foreach_neg(dev_grads)
        corrected = torch._foreach_add(dev_errors, dev_grads, alpha=lr)
        norms = torch._foreach_norm(corrected, 1)
        scales = [n / max(c.numel(), 1) for n, c in zip(norms, corrected)]
        deltas = torch._foreach_sign(corrected)
        torch._foreach_mul_(deltas, scales)
        torch._foreach_sub_(dev_params, deltas)
        torch._foreach_sub_(corrected, deltas)
        torch._foreach_copy_(dev_errors, corrected)


class EFSignSGD(MagcoreOptimizer):
    r"""Scaled sign descent with error feedback (EF-signSGD).

    With gradient :math:`g_k` (negated when ``maximize``) and the error
    :math:`e_k` carried over from the last step (:math:`e_0 = 0`):

    .. math::

        c_k &= \alpha g_k + e_k, \\
        \Delta_k &= \frac{\lVert c_k\rVert_1}{n}\,
            \operatorname{sign}(c_k), \qquad
        \theta_{k+1} = \theta_k - \Delta_k, \\
        e_{k+1} &= c_k - \Delta_k,

    where :math:`\alpha` is ``lr`` and :math:`n` the number of entries of
    the tensor; the norm and the scale are taken per tensor. This is
    Algorithm 2 of Karimireddy et al. (2019) with their scaled-sign
    compressor. The learning rate enters *before* the compression, so the
    error is a displacement, in the units of the parameters. The state key
    is ``error`` (:math:`e`).

    Two facts make it work, both checked in the tests: the point
    :math:`\theta_k - e_k` moves exactly like plain SGD,
    :math:`\theta_{k+1} - e_{k+1} = \theta_k - e_k - \alpha g_k`; and the
    compression removes at most a fixed share of each vector,
    :math:`\lVert c - \Delta\rVert_2^2 \le (1 - \phi(c))\lVert
    c\rVert_2^2` with :math:`\phi(c) = \lVert c\rVert_1^2/(n\lVert
    c\rVert_2^2) \ge 1/n`, an equality when no entry of :math:`c` is
    zero.

    Args:
        params: iterable of parameters or of dicts defining groups.
        lr: learning rate :math:`\alpha >= 0`.
        maximize: maximize the objective instead of minimizing it.
        foreach: ``True`` for the multi-tensor path, ``False`` for the
            per-tensor reference, ``None`` to choose (multi-tensor).

    Example:
        >>> w = torch.nn.Parameter(torch.tensor([3.0, -1.0]))
        >>> opt = EFSignSGD([w], lr=0.1)
        >>> w.grad = torch.tensor([3.0, -1.0])
        >>> _ = opt.step()
        >>> w.detach(), opt.state[w]["error"]
        (tensor([ 2.8000, -0.8000]), tensor([0.1000, 0.1000]))
    """

    _checks = {"lr": check_nonnegative}

    def __init__(self, params, lr, maximize=False, *, foreach=None):
        super().__init__(params, dict(lr=lr, maximize=maximize,
                                      foreach=foreach))

    def _update_group(self, group, params, grads, foreach):
        for param in params:
            state = self.state[param]
            if "error" not in state:
                state["error"] = torch.zeros_like(
                    param, memory_format=torch.preserve_format)
        errors = [self.state[param]["error"] for param in params]
        # The multi-tensor path is also the fast path (foreach=None).
        update = choose(foreach, ef_sign_foreach, ef_sign_foreach,
                        ef_sign_reference)
        update(params, grads, errors, lr=group["lr"],
               maximize=group["maximize"])
