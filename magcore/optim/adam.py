r"""Adam and AdamW with the semantics of ``torch.optim.Adam``.

Adam's correction term :math:`\hat m_k / (\sqrt{\hat v_k} + \epsilon)` has
magnitude about one per coordinate whenever :math:`|g| \gg \epsilon` and the
gradient's sign is stable: with ``betas=(0, 0)`` and ``eps=0`` it is exactly
:math:`\operatorname{sign}(g_k)`.
"""

import math

import torch

from .base import (MagcoreOptimizer, check_betas, check_nonnegative,
                   group_by_device_and_dtype)
from .fused import adam_fused, choose


def _bias_corrections(step, beta1, beta2):
    return 1 - beta1 ** step, math.sqrt(1 - beta2 ** step)


def adam_reference(params, grads, exp_avgs, exp_avg_sqs, steps, *, lr,
                   beta1, beta2, eps, weight_decay, decoupled_weight_decay,
                   maximize):
    """Plain per-tensor Adam step; updates params and state in place."""
    for i, param in enumerate(params):
        grad = -grads[i] if maximize else grads[i]
        exp_avg, exp_avg_sq, step_t = exp_avgs[i], exp_avg_sqs[i], steps[i]
        step_t += 1

        if weight_decay != 0:
            if decoupled_weight_decay:
                param.mul_(1 - lr * weight_decay)
            else:
                grad = grad.add(param, alpha=weight_decay)

        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)

        bc1, bc2_sqrt = _bias_corrections(step_t.item(), beta1, beta2)
        denom = (exp_avg_sq.sqrt() / bc2_sqrt).add_(eps)
        param.addcdiv_(exp_avg, denom, value=-lr / bc1)


def adam_foreach(params, grads, exp_avgs, exp_avg_sqs, steps, *, lr,
                 beta1, beta2, eps, weight_decay, decoupled_weight_decay,
                 maximize):
    """Multi-tensor Adam step: the same arithmetic as :func:`adam_reference`.
    """
    for _, (dev_params, dev_grads, dev_m, dev_v, dev_steps) in (
            group_by_device_and_dtype(
                params, grads, exp_avgs, exp_avg_sqs, steps)):
        if maximize:
            dev_grads = torch._foreach_neg(dev_grads)
        torch._foreach_add_(dev_steps, 1)

        if weight_decay != 0:
            if decoupled_weight_decay:
                torch._foreach_mul_(dev_params, 1 - lr * weight_decay)
            else:
                dev_grads = torch._foreach_add(
                    dev_grads, dev_params, alpha=weight_decay)

        torch._foreach_lerp_(dev_m, dev_grads, 1 - beta1)
        torch._foreach_mul_(dev_v, beta2)
        torch._foreach_addcmul_(dev_v, dev_grads, dev_grads, 1 - beta2)

        corrections = [_bias_corrections(s.item(), beta1, beta2)
                       for s in dev_steps]
        denom = torch._foreach_sqrt(dev_v)
        torch._foreach_div_(denom, [c[1] for c in corrections])
        torch._foreach_add_(denom, eps)
        torch._foreach_addcdiv_(dev_params, dev_m, denom,
                                [-lr / c[0] for c in corrections])


class Adam(MagcoreOptimizer):
    r"""Adam, and AdamW with ``decoupled_weight_decay=True``.

    With gradient :math:`g_k` (negated when ``maximize``) at step
    :math:`k = 1, 2, \dots`:

    .. math::

        g_k &\leftarrow g_k + \lambda\theta_k
            \quad\text{(coupled weight decay only)}, \\
        \theta_k &\leftarrow (1 - \alpha\lambda)\,\theta_k
            \quad\text{(decoupled weight decay only)}, \\
        m_k &= \beta_1 m_{k-1} + (1 - \beta_1) g_k, \qquad
        v_k = \beta_2 v_{k-1} + (1 - \beta_2) g_k^2, \\
        p_k &= \frac{m_k / (1 - \beta_1^k)}
            {\sqrt{v_k / (1 - \beta_2^k)} + \epsilon}, \qquad
        \theta_{k+1} = \theta_k - \alpha p_k,

    with :math:`m_0 = v_0 = 0`; :math:`\alpha` is ``lr``,
    :math:`(\beta_1, \beta_2)` is ``betas``, :math:`\epsilon` is ``eps`` and
    :math:`\lambda` is ``weight_decay``. The state keys are ``step`` (a
    float32 scalar tensor, as in PyTorch), ``exp_avg`` (:math:`m`) and
    ``exp_avg_sq`` (:math:`v`), so checkpoints of ``torch.optim.Adam`` load.

    ``eps`` is added *outside* the square root, as in PyTorch and the paper
    of Kingma and Ba; the book's opening post writes
    :math:`\sqrt{\hat v + \epsilon}`, which differs for small :math:`v`.
    AMSGrad, ``capturable`` and ``fused`` are not provided.

    Args:
        params: iterable of parameters or of dicts defining groups.
        lr: learning rate :math:`\alpha >= 0`.
        betas: averaging factors :math:`(\beta_1, \beta_2) \in [0, 1)^2`.
        eps: :math:`\epsilon >= 0` added to the denominator.
        weight_decay: :math:`\lambda >= 0`.
        decoupled_weight_decay: apply weight decay to the parameters
            directly (AdamW) instead of adding it to the gradient.
        maximize: maximize the objective instead of minimizing it.
        foreach: ``True`` for the multi-tensor path, ``False`` for the
            per-tensor reference, ``None`` for the fast path.

    Example:
        >>> w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
        >>> opt = Adam([w], lr=0.1)
        >>> (w ** 2).sum().backward()
        >>> _ = opt.step()
        >>> w.detach()
        tensor([ 0.9000, -1.9000])
    """

    _checks = {
        "lr": check_nonnegative,
        "betas": lambda name, value: check_betas(value),
        "eps": check_nonnegative,
        "weight_decay": check_nonnegative,
    }

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                 weight_decay=0.0, decoupled_weight_decay=False,
                 maximize=False, *, foreach=None):
        defaults = dict(lr=lr, betas=betas, eps=eps,
                        weight_decay=weight_decay,
                        decoupled_weight_decay=decoupled_weight_decay,
                        maximize=maximize, foreach=foreach)
        super().__init__(params, defaults)

    def _update_group(self, group, params, grads, foreach):
        for p in params:
            state = self.state[p]
            if not state:
                state["step"] = torch.tensor(0.0)
                state["exp_avg"] = torch.zeros_like(
                    p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(
                    p, memory_format=torch.preserve_format)
        states = [self.state[p] for p in params]
        update = choose(foreach, adam_fused, adam_foreach, adam_reference)
        beta1, beta2 = group["betas"]
        update(params, grads, [s["exp_avg"] for s in states],
               [s["exp_avg_sq"] for s in states],
               [s["step"] for s in states], lr=group["lr"], beta1=beta1,
               beta2=beta2, eps=group["eps"],
               weight_decay=group["weight_decay"],
               decoupled_weight_decay=group["decoupled_weight_decay"],
               maximize=group["maximize"])
