r"""Stochastic gradient descent with the semantics of ``torch.optim.SGD``.

The correction term is the (momentum-averaged) gradient itself, so its
magnitude shrinks with :math:`|\nabla f|`: exponent :math:`p = q = 1` in the
book's notation.
"""

import torch

from .base import (MagcoreOptimizer, check_nonnegative,
                   check_unit_interval, group_by_device_and_dtype)
from .fused import choose, sgd_fused


def sgd_reference(params, grads, bufs, *, lr, momentum, dampening,
                  weight_decay, nesterov, maximize):
    """Plain per-tensor SGD step; updates ``params`` and ``bufs`` in place.

    ``bufs`` holds one momentum buffer per parameter, ``None`` before the
    first step; new buffers are written into the list.
    """
    for i, param in enumerate(params):
        grad = -grads[i] if maximize else grads[i]
        if weight_decay != 0:
            grad = grad.add(param, alpha=weight_decay)

        if momentum != 0:
            buf = bufs[i]
            if buf is None:
                buf = torch.clone(grad).detach()
                bufs[i] = buf
            else:
                buf.mul_(momentum).add_(grad, alpha=1 - dampening)
            grad = grad.add(buf, alpha=momentum) if nesterov else buf

        param.add_(grad, alpha=-lr)


def sgd_foreach(params, grads, bufs, *, lr, momentum, dampening,
                weight_decay, nesterov, maximize):
    """Multi-tensor SGD step: the same arithmetic as :func:`sgd_reference`."""
    for idx, (dev_params, dev_grads, dev_bufs) in group_by_device_and_dtype(
            params, grads, bufs):
        if maximize:
            dev_grads = torch._foreach_neg(dev_grads)
        if weight_decay != 0:
            dev_grads = torch._foreach_add(
                dev_grads, dev_params, alpha=weight_decay)

        if momentum != 0:
            old = [j for j, b in enumerate(dev_bufs) if b is not None]
            if old:
                old_bufs = [dev_bufs[j] for j in old]
                torch._foreach_mul_(old_bufs, momentum)
                torch._foreach_add_(old_bufs, [dev_grads[j] for j in old],
                                    alpha=1 - dampening)
            for j, b in enumerate(dev_bufs):
                if b is None:
                    dev_bufs[j] = torch.clone(dev_grads[j]).detach()
                    bufs[idx[j]] = dev_bufs[j]
            if nesterov:
                dev_grads = torch._foreach_add(
                    dev_grads, dev_bufs, alpha=momentum)
            else:
                dev_grads = dev_bufs

        torch._foreach_add_(dev_params, dev_grads, alpha=-lr)


class SGD(MagcoreOptimizer):
    r"""Stochastic gradient descent, optionally with momentum.

    With gradient :math:`g_k = \nabla f(\theta_k)` (negated when
    ``maximize``), the step is

    .. math::

        g_k &\leftarrow g_k + \lambda \theta_k, \\
        b_k &= \mu b_{k-1} + (1 - \tau) g_k \quad (b_1 = g_1), \\
        p_k &= g_k + \mu b_k \text{ (Nesterov) or } b_k, \\
        \theta_{k+1} &= \theta_k - \alpha p_k,

    where :math:`\alpha` is ``lr``, :math:`\mu` is ``momentum``,
    :math:`\tau` is ``dampening`` and :math:`\lambda` is ``weight_decay``.
    Without momentum :math:`p_k = g_k`.

    This follows ``torch.optim.SGD`` exactly, including its departure from
    the textbook heavy-ball method: the buffer starts at the first gradient
    (no dampening on step 1), and the learning rate multiplies the buffer
    rather than entering it. The state key is ``momentum_buffer``.

    Args:
        params: iterable of parameters or of dicts defining groups.
        lr: learning rate :math:`\alpha >= 0`.
        momentum: momentum factor :math:`\mu \in [0, 1)`.
        dampening: dampening :math:`\tau \in [0, 1)` of the new gradient.
        weight_decay: L2 penalty :math:`\lambda >= 0` added to the gradient.
        nesterov: use Nesterov momentum (needs momentum > 0, dampening 0).
        maximize: maximize the objective instead of minimizing it.
        foreach: ``True`` for the multi-tensor path, ``False`` for the
            per-tensor reference, ``None`` for the fast path.

    Example:
        >>> w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
        >>> opt = SGD([w], lr=0.1)
        >>> (w ** 2).sum().backward()
        >>> _ = opt.step()
        >>> w.detach()
        tensor([ 0.8000, -1.6000])
    """

    _checks = {
        "lr": check_nonnegative,
        "momentum": check_unit_interval,
        "dampening": check_unit_interval,
        "weight_decay": check_nonnegative,
    }

    def __init__(self, params, lr, momentum=0.0, dampening=0.0,
                 weight_decay=0.0, nesterov=False, maximize=False, *,
                 foreach=None):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov,
                        maximize=maximize, foreach=foreach)
        super().__init__(params, defaults)

    def _validate(self, group):
        super()._validate(group)
        if group.get("nesterov") and (
                group.get("momentum", 0) <= 0
                or group.get("dampening", 0) != 0):
            raise ValueError(
                "Invalid nesterov=True: Nesterov momentum needs momentum "
                f"> 0 and dampening 0 (got momentum={group.get('momentum')},"
                f" dampening={group.get('dampening')})")

    def _update_group(self, group, params, grads, foreach):
        bufs = [self.state[p].get("momentum_buffer") for p in params]
        update = choose(foreach, sgd_fused, sgd_foreach, sgd_reference)
        update(params, grads, bufs, lr=group["lr"],
               momentum=group["momentum"], dampening=group["dampening"],
               weight_decay=group["weight_decay"],
               nesterov=group["nesterov"], maximize=group["maximize"])
        if group["momentum"] != 0:
            for p, buf in zip(params, bufs):
                self.state[p]["momentum_buffer"] = buf
