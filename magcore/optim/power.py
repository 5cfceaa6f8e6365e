r"""The magnitude family: one update rule with a geometry and a homogeneity.

The book separates two knobs that a correction term :math:`p_k` mixes:

* the **geometry** :math:`p \ge 0`, which fixes the direction
  :math:`\operatorname{sign}(c)\odot|c|^p` (elementwise), the steepest-descent
  direction for the :math:`\ell_r` norm with :math:`r = (p+1)/p`;
* the **homogeneity** :math:`q \ge 0`, which fixes how the length of the step
  scales with the gradient: :math:`u(\gamma c) = \gamma^q u(c)`.

Both are set by

.. math::

    u(c) = \|c\|_{p+1}^{\,q-p}\; \operatorname{sign}(c) \odot |c|^p,

where the norm runs over each tensor or over the whole parameter group. The
named optimizers in this module are presets of :class:`PQSGD`:

=================  =====  =====  ==============================
optimizer          p      q      momentum
=================  =====  =====  ==============================
``SignSGD``        0      0      EMA (Signum)
``SignPowerSGD``   p      p      EMA, power applied after it
``NormPowerSGD``   1      p      EMA, group norm
``NSGD``           1      0      EMA, group norm
``Lion``           0      0      two factors, decoupled decay
=================  =====  =====  ==============================

Under data parallelism the update is that of one process: with DDP every
rank holds the whole averaged gradient; with FSDP2 (DTensor parameters)
each rank holds a shard, and every norm (:math:`q \ne p`) is that of the
whole tensor or group, read with one all-reduce per group (see
``full_norms`` in ``base``).

Non-finite gradients are not checked for, as in ``torch.optim``; what they
do follows from the arithmetic and is tested:

* a NaN entry makes its parameter NaN, except at ``p = 0``: PyTorch defines
  ``sign(NaN) = 0``, so sign descent and Lion silently skip that coordinate
  (and, with momentum, keep skipping it, since the buffer stays NaN);
* where a norm enters (:math:`q \ne p`), a NaN entry makes the norm NaN and
  with it every parameter that shares the norm;
* an infinite entry gives a finite step of length ``lr`` at ``p = q = 0``,
  an infinite parameter at ``q = p > 0``, and a NaN parameter where a norm
  enters (the other coordinates do not move on that step).
"""

import math

import torch

from .base import (MagcoreOptimizer, check_betas, check_finite_nonnegative,
                   check_nonnegative, check_unit_interval, full_norms,
                   group_by_device_and_dtype)
from .fused import choose, pq_fused

NORM_SCOPES = ("group", "tensor")


def power_direction(c, p):
    """sign(c) * |c|^p elementwise, with the exact forms at p = 0 and 1.

    At p = 1 the input itself is returned (not a copy).
    """
    if p == 0:
        return torch.sign(c)
    if p == 1:
        return c
    return torch.sign(c).mul_(torch.abs(c).pow_(p))


def _foreach_direction(cs, p):
    if p == 0:
        return torch._foreach_sign(cs)
    if p == 1:
        return cs
    powers = torch._foreach_abs(cs)
    torch._foreach_pow_(powers, p)
    signs = torch._foreach_sign(cs)
    torch._foreach_mul_(signs, powers)
    return signs


def _scale(norm, p, q):
    """||c||^(q-p), and 0 where the norm is 0 (then c = 0 and so is u).

    A NaN norm stays NaN, so that a NaN gradient is seen, not hidden. The
    norm of a sharded tensor is first made that of the whole tensor.
    """
    norm, = full_norms([norm])
    return torch.where(norm == 0, torch.zeros_like(norm), norm.pow(q - p))


def _combine_norms(norms, r):
    """The l_r norm of a concatenation from the l_r norms of its parts.

    Norms of shards of sharded tensors are first made those of the whole
    tensors, with one all-reduce for the group (see ``full_norms``).
    """
    norms = full_norms(norms)
    dtype = norms[0].dtype
    for n in norms[1:]:
        dtype = torch.promote_types(dtype, n.dtype)
    device = norms[0].device
    stacked = torch.stack([n.to(device=device, dtype=dtype) for n in norms])
    return torch.linalg.vector_norm(stacked, ord=r)


def _averaged(grads, bufs, beta1, beta2):
    """The vector c to map, updating the buffers m in place.

    c = beta1 m + (1 - beta1) g, then m <- beta2 m + (1 - beta2) g. When
    beta1 == beta2 this is one exponential average and c is the new m.
    """
    if bufs is None:
        return grads
    if beta1 == beta2:
        for m, g in zip(bufs, grads):
            m.lerp_(g, 1 - beta1)
        return list(bufs)
    cs = [m.lerp(g, 1 - beta1) for m, g in zip(bufs, grads)]
    for m, g in zip(bufs, grads):
        m.lerp_(g, 1 - beta2)
    return cs


def _foreach_averaged(grads, bufs, beta1, beta2):
    if bufs is None:
        return grads
    if beta1 == beta2:
        torch._foreach_lerp_(bufs, grads, 1 - beta1)
        return list(bufs)
    cs = torch._foreach_lerp(bufs, grads, 1 - beta1)
    torch._foreach_lerp_(bufs, grads, 1 - beta2)
    return cs


def pq_reference(params, grads, bufs, *, lr, p, q, betas, weight_decay,
                 norm_scope, maximize):
    """Plain per-tensor step of the (p, q) family; updates in place.

    ``bufs`` is the list of momentum buffers, or ``None`` without momentum.
    """
    beta1, beta2 = betas
    grads = [-g if maximize else g for g in grads]
    if weight_decay != 0:
        for param in params:
            param.mul_(1 - lr * weight_decay)

    cs = _averaged(grads, bufs, beta1, beta2)
    r = p + 1
    if q != p and norm_scope == "group":
        norm = _combine_norms(
            [torch.linalg.vector_norm(c, ord=r) for c in cs], r)
        scales = [_scale(norm, p, q)] * len(cs)
    elif q != p:
        scales = [_scale(torch.linalg.vector_norm(c, ord=r), p, q)
                  for c in cs]
    else:
        scales = [None] * len(cs)

    for param, c, scale in zip(params, cs, scales):
        d = power_direction(c, p)
        if scale is not None:
            d = d * scale
        param.add_(d, alpha=-lr)


def pq_foreach(params, grads, bufs, *, lr, p, q, betas, weight_decay,
               norm_scope, maximize):
    """Multi-tensor step of the (p, q) family: the arithmetic of
    :func:`pq_reference` with one kernel launch per operation and bucket.
    """
    beta1, beta2 = betas
    buf_list = bufs if bufs is not None else [None] * len(params)
    buckets = group_by_device_and_dtype(params, grads, buf_list)
    r = p + 1

    directions, tensor_norms = [], []
    for _, (dev_params, dev_grads, dev_bufs) in buckets:
        if maximize:
            dev_grads = torch._foreach_neg(dev_grads)
        if weight_decay != 0:
            torch._foreach_mul_(dev_params, 1 - lr * weight_decay)
        cs = _foreach_averaged(
            dev_grads, None if bufs is None else dev_bufs, beta1, beta2)
        if q != p:
            tensor_norms.append(torch._foreach_norm(cs, r))
        directions.append(_foreach_direction(cs, p))

    if q != p:
        # Whole-tensor norms of the group's shards: one all-reduce.
        whole = iter(full_norms([n for ns in tensor_norms for n in ns]))
        tensor_norms = [[next(whole) for _ in ns] for ns in tensor_norms]
    if q != p and norm_scope == "group":
        norm = _combine_norms([n for ns in tensor_norms for n in ns], r)
        scale = _scale(norm, p, q)
    for b, (_, (dev_params, _, _)) in enumerate(buckets):
        d = directions[b]
        if q != p and norm_scope == "group":
            d = torch._foreach_mul(d, scale.to(d[0].device))
        elif q != p:
            d = torch._foreach_mul(
                d, [_scale(n, p, q) for n in tensor_norms[b]])
        torch._foreach_add_(dev_params, d, alpha=-lr)


def _check_norm_scope(name, value):
    if value not in NORM_SCOPES:
        raise ValueError(
            f"Invalid {name}: {value!r} (expected one of {NORM_SCOPES})")


class PQSGD(MagcoreOptimizer):
    r"""The (p, q) magnitude family: geometry p, homogeneity q.

    With gradient :math:`g_k` (negated when ``maximize``):

    .. math::

        \theta_k &\leftarrow (1 - \alpha\lambda)\,\theta_k, \\
        c_k &= \beta_1 m_{k-1} + (1 - \beta_1) g_k, \qquad
        m_k = \beta_2 m_{k-1} + (1 - \beta_2) g_k, \\
        p_k &= \|c_k\|_{p+1}^{\,q-p}\,\operatorname{sign}(c_k)
            \odot |c_k|^{p}, \qquad
        \theta_{k+1} = \theta_k - \alpha\, p_k,

    with :math:`m_0 = 0`. Here :math:`\alpha` is ``lr``, :math:`p` is ``p``,
    :math:`q` is ``q``, :math:`(\beta_1, \beta_2)` is ``betas`` and
    :math:`\lambda` is ``weight_decay``. The norm runs over each tensor
    (``norm_scope="tensor"``) or over every parameter of the group that has
    a gradient (``"group"``); :math:`\|c\|^{q-p}` is taken as 0 when
    :math:`c = 0`, so a zero gradient moves nothing. The state key is
    ``exp_avg`` (:math:`m`), kept only when a beta is non-zero.

    Notes on departures: the buffer starts at zero, unlike
    ``torch.optim.SGD`` whose buffer starts at the first gradient; for
    :math:`q = 0` members the first step is unaffected. Momentum is applied
    before the map, as in Signum and Lion, not after it as in pbSGD.

    Args:
        params: iterable of parameters or of dicts defining groups.
        lr: learning rate :math:`\alpha >= 0`.
        p: geometry exponent, finite and >= 0 (0: sign, 1: Euclidean).
        q: homogeneity exponent, finite and >= 0 (0: scale-free step,
            1: step proportional to the gradient). Defaults to ``p``.
        betas: :math:`(\beta_1, \beta_2) \in [0, 1)^2`; equal values give
            one exponential average (Signum, NSGD with momentum).
        weight_decay: decoupled weight decay :math:`\lambda >= 0`.
        norm_scope: ``"group"`` or ``"tensor"``.
        maximize: maximize the objective instead of minimizing it.
        foreach: ``True`` for the multi-tensor path, ``False`` for the
            per-tensor reference, ``None`` for the fast path.

    Example:
        >>> w = torch.nn.Parameter(torch.tensor([3.0, -4.0]))
        >>> opt = PQSGD([w], lr=0.5, p=1.0, q=0.0)   # normalized GD
        >>> (0.5 * (w ** 2).sum()).backward()
        >>> _ = opt.step()
        >>> w.detach()
        tensor([ 2.7000, -3.6000])
    """

    _checks = {
        "lr": check_nonnegative,
        "p": check_finite_nonnegative,
        "q": check_finite_nonnegative,
        "betas": lambda name, value: check_betas(value),
        "weight_decay": check_nonnegative,
        "norm_scope": _check_norm_scope,
    }

    def __init__(self, params, lr, p=1.0, q=None, betas=(0.0, 0.0),
                 weight_decay=0.0, norm_scope="group", maximize=False, *,
                 foreach=None):
        if q is None:
            q = p
        defaults = dict(lr=lr, p=p, q=q, betas=betas,
                        weight_decay=weight_decay, norm_scope=norm_scope,
                        maximize=maximize, foreach=foreach)
        super().__init__(params, defaults)

    def _family(self, group):
        """(p, q, betas, weight_decay, norm_scope) of one group."""
        return (float(group["p"]), float(group["q"]),
                tuple(float(b) for b in group["betas"]),
                group["weight_decay"], group["norm_scope"])

    def _update_group(self, group, params, grads, foreach):
        p, q, betas, weight_decay, norm_scope = self._family(group)
        bufs = None
        if any(betas):
            for param in params:
                state = self.state[param]
                if "exp_avg" not in state:
                    state["exp_avg"] = torch.zeros_like(
                        param, memory_format=torch.preserve_format)
            bufs = [self.state[param]["exp_avg"] for param in params]
        update = choose(foreach, pq_fused, pq_foreach, pq_reference)
        update(params, grads, bufs, lr=group["lr"], p=p, q=q, betas=betas,
               weight_decay=weight_decay, norm_scope=norm_scope,
               maximize=group["maximize"])


_MOMENTUM_CHECKS = {
    "lr": check_nonnegative,
    "momentum": check_unit_interval,
}


class SignSGD(PQSGD):
    r"""Sign descent; with momentum, Signum.

    .. math::

        m_k = \mu m_{k-1} + (1 - \mu) g_k, \qquad
        \theta_{k+1} = \theta_k - \alpha \operatorname{sign}(m_k),

    with :math:`m_0 = 0`, :math:`\alpha` = ``lr``, :math:`\mu` =
    ``momentum`` (without momentum :math:`m_k = g_k`). This is
    :class:`PQSGD` with ``p = q = 0`` and ``betas = (momentum, momentum)``;
    ``sign(0) = 0``, so a zero gradient entry moves nothing. The state key
    is ``exp_avg``. Bernstein et al. (2018) average with the same factor.

    Args:
        params: iterable of parameters or of dicts defining groups.
        lr: learning rate :math:`\alpha >= 0`.
        momentum: averaging factor :math:`\mu \in [0, 1)`.
        maximize: maximize the objective instead of minimizing it.
        foreach: fast path (``None``), multi-tensor (``True``) or
            reference (``False``).

    Example:
        >>> w = torch.nn.Parameter(torch.tensor([3.0, -0.01]))
        >>> opt = SignSGD([w], lr=0.1)
        >>> (w ** 2).sum().backward()
        >>> _ = opt.step()
        >>> w.detach()
        tensor([2.9000, 0.0900])
    """

    _checks = _MOMENTUM_CHECKS

    def __init__(self, params, lr, momentum=0.0, maximize=False, *,
                 foreach=None):
        MagcoreOptimizer.__init__(self, params, dict(
            lr=lr, momentum=momentum, maximize=maximize, foreach=foreach))

    def _family(self, group):
        mu = float(group["momentum"])
        return 0.0, 0.0, (mu, mu), 0.0, "group"


class SignPowerSGD(PQSGD):
    r"""The sign-power family: :math:`p_k = \operatorname{sign}(m_k)
    \odot |m_k|^p` elementwise.

    .. math::

        m_k = \mu m_{k-1} + (1 - \mu) g_k, \qquad
        \theta_{k+1} = \theta_k - \alpha\,
            \operatorname{sign}(m_k) \odot |m_k|^{p},

    with :math:`m_0 = 0`, :math:`\alpha` = ``lr``, :math:`\mu` =
    ``momentum``, :math:`p` = ``p``. Geometry and homogeneity are both
    :math:`p` (:class:`PQSGD` with ``q = p``): the direction is steepest
    descent for the :math:`\ell_{(p+1)/p}` norm and the step scales like
    :math:`|g|^p`. ``p = 0`` is :class:`SignSGD`; ``p = 1`` with momentum 0
    is plain :class:`SGD`. The power is taken after the average (as in
    PowerStep), not before it (as in pbSGD).

    Args:
        params: iterable of parameters or of dicts defining groups.
        lr: learning rate :math:`\alpha >= 0`.
        p: exponent, finite and >= 0.
        momentum: averaging factor :math:`\mu \in [0, 1)`.
        maximize: maximize the objective instead of minimizing it.
        foreach: fast path (``None``), multi-tensor (``True``) or
            reference (``False``).

    Example:
        >>> w = torch.nn.Parameter(torch.tensor([2.0, -0.5]))
        >>> opt = SignPowerSGD([w], lr=0.1, p=0.5)
        >>> (0.5 * (w ** 2).sum()).backward()
        >>> _ = opt.step()
        >>> w.detach()
        tensor([ 1.8586, -0.4293])
    """

    _checks = dict(_MOMENTUM_CHECKS, p=check_finite_nonnegative)

    def __init__(self, params, lr, p, momentum=0.0, maximize=False, *,
                 foreach=None):
        MagcoreOptimizer.__init__(self, params, dict(
            lr=lr, p=p, momentum=momentum, maximize=maximize,
            foreach=foreach))

    def _family(self, group):
        mu, p = float(group["momentum"]), float(group["p"])
        return p, p, (mu, mu), 0.0, "group"


class NormPowerSGD(PQSGD):
    r"""The norm-power family: :math:`p_k = m_k / \|m_k\|_2^{1-p}`.

    .. math::

        m_k = \mu m_{k-1} + (1 - \mu) g_k, \qquad
        \theta_{k+1} = \theta_k - \alpha\,\frac{m_k}{\|m_k\|_2^{1-p}},

    the norm taken over every parameter of the group that has a gradient,
    :math:`m_0 = 0`, :math:`\alpha` = ``lr``, :math:`\mu` = ``momentum``,
    :math:`p` = ``p``. The direction is Euclidean and the step length is
    :math:`\alpha\|m_k\|_2^{p}`: :class:`PQSGD` with geometry 1 and
    homogeneity ``p``. ``p = 0`` is :class:`NSGD`; ``p = 1`` with momentum
    0 is plain :class:`SGD`. A zero gradient moves nothing.

    Args:
        params: iterable of parameters or of dicts defining groups.
        lr: learning rate :math:`\alpha >= 0`.
        p: homogeneity exponent, finite and >= 0.
        momentum: averaging factor :math:`\mu \in [0, 1)`.
        maximize: maximize the objective instead of minimizing it.
        foreach: fast path (``None``), multi-tensor (``True``) or
            reference (``False``).

    Example:
        >>> w = torch.nn.Parameter(torch.tensor([3.0, 4.0]))
        >>> opt = NormPowerSGD([w], lr=0.1, p=0.5)
        >>> (0.5 * (w ** 2).sum()).backward()
        >>> _ = opt.step()
        >>> w.detach()
        tensor([2.8658, 3.8211])
    """

    _checks = dict(_MOMENTUM_CHECKS, p=check_finite_nonnegative)

    def __init__(self, params, lr, p, momentum=0.0, maximize=False, *,
                 foreach=None):
        MagcoreOptimizer.__init__(self, params, dict(
            lr=lr, p=p, momentum=momentum, maximize=maximize,
            foreach=foreach))

    def _family(self, group):
        mu = float(group["momentum"])
        return 1.0, float(group["p"]), (mu, mu), 0.0, "group"


class NSGD(PQSGD):
    r"""Normalized SGD, with momentum as in Cutkosky and Mehta (2020).

    .. math::

        m_k = \mu m_{k-1} + (1 - \mu) g_k, \qquad
        \theta_{k+1} = \theta_k - \alpha\, \frac{m_k}{\|m_k\|_2},

    the norm taken over every parameter of the group that has a gradient,
    :math:`m_0 = 0`, :math:`\alpha` = ``lr``, :math:`\mu` = ``momentum``.
    Every step has length exactly :math:`\alpha` (geometry 1, homogeneity
    0 in :class:`PQSGD`), except that a zero gradient moves nothing instead
    of dividing by zero. The paper starts the buffer at the first
    gradient; for this scale-free step the first step is the same.

    Args:
        params: iterable of parameters or of dicts defining groups.
        lr: learning rate :math:`\alpha >= 0`.
        momentum: averaging factor :math:`\mu \in [0, 1)`.
        maximize: maximize the objective instead of minimizing it.
        foreach: fast path (``None``), multi-tensor (``True``) or
            reference (``False``).

    Example:
        >>> w = torch.nn.Parameter(torch.tensor([3.0, 4.0]))
        >>> opt = NSGD([w], lr=0.5)
        >>> (w ** 2).sum().backward()
        >>> _ = opt.step()
        >>> w.detach()
        tensor([2.7000, 3.6000])
    """

    _checks = _MOMENTUM_CHECKS

    def __init__(self, params, lr, momentum=0.0, maximize=False, *,
                 foreach=None):
        MagcoreOptimizer.__init__(self, params, dict(
            lr=lr, momentum=momentum, maximize=maximize, foreach=foreach))

    def _family(self, group):
        mu = float(group["momentum"])
        return 1.0, 0.0, (mu, mu), 0.0, "group"


class Lion(PQSGD):
    r"""Lion (Chen et al., 2023): the sign of an interpolated momentum.

    .. math::

        \theta_k &\leftarrow (1 - \alpha\lambda)\,\theta_k, \\
        c_k &= \beta_1 m_{k-1} + (1 - \beta_1) g_k, \qquad
        \theta_{k+1} = \theta_k - \alpha \operatorname{sign}(c_k), \\
        m_k &= \beta_2 m_{k-1} + (1 - \beta_2) g_k,

    with :math:`m_0 = 0`, :math:`\alpha` = ``lr``,
    :math:`(\beta_1, \beta_2)` = ``betas``, :math:`\lambda` =
    ``weight_decay``. This is :class:`PQSGD` with ``p = q = 0``. The paper
    writes the decay inside the update,
    :math:`\theta - \alpha(\operatorname{sign}(c) + \lambda\theta)`;
    applying it first is the same step. Its learning rates are typically
    3 to 10 times smaller than AdamW's. The state key is ``exp_avg``.

    Args:
        params: iterable of parameters or of dicts defining groups.
        lr: learning rate :math:`\alpha >= 0`.
        betas: :math:`(\beta_1, \beta_2) \in [0, 1)^2`.
        weight_decay: decoupled weight decay :math:`\lambda >= 0`.
        maximize: maximize the objective instead of minimizing it.
        foreach: fast path (``None``), multi-tensor (``True``) or
            reference (``False``).

    Example:
        >>> w = torch.nn.Parameter(torch.tensor([1.0, -1.0]))
        >>> opt = Lion([w], lr=0.1)
        >>> (w ** 2).sum().backward()
        >>> _ = opt.step()
        >>> w.detach()
        tensor([ 0.9000, -0.9000])
    """

    _checks = {
        "lr": check_nonnegative,
        "betas": lambda name, value: check_betas(value),
        "weight_decay": check_nonnegative,
    }

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0,
                 maximize=False, *, foreach=None):
        MagcoreOptimizer.__init__(self, params, dict(
            lr=lr, betas=betas, weight_decay=weight_decay,
            maximize=maximize, foreach=foreach))

    def _family(self, group):
        betas = tuple(float(b) for b in group["betas"])
        return 0.0, 0.0, betas, group["weight_decay"], "group"
