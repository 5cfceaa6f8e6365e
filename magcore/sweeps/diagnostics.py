r"""How much an update looks like a sign: measures on tensors.

An optimizer's step :math:`\Delta\theta = -\alpha\, u` is sign-like when
:math:`u` has the signs of some reference vector :math:`r` (the gradient
:math:`g` or the momentum :math:`m`) and entries of equal size. These pure
functions measure both parts. Each accepts one tensor or a sequence of
tensors (for example the per-parameter updates of a model), which it
flattens and concatenates; nothing is modified, and the results are Python
floats or, for percentiles, a float64 tensor.

* :func:`sign_agreement` -- the share of coordinates where
  :math:`\operatorname{sign}(u_i) = \operatorname{sign}(r_i)`;
* :func:`cosine_similarity` and :func:`cosine_to_sign` -- the cosine of the
  angle between :math:`u` and :math:`r`, or :math:`\operatorname{sign}(r)`;
* :func:`density` -- :math:`\varphi(v) = \|v\|_1^2 / (d\,\|v\|_2^2)`, which
  is 1 for a vector of equal magnitudes and :math:`1/d` for a one-hot one;
  :math:`\cos(u, \operatorname{sign}(u)) = \sqrt{\varphi(u)}` when no
  entry of :math:`u` is zero;
* :func:`magnitude_percentiles` -- percentiles of :math:`|u_i|`;
* :func:`update_diagnostics` -- all of these at once, for one step.

Example:
    >>> u = torch.tensor([0.5, -1.0, 0.0, 2.0])
    >>> g = torch.tensor([1.0, -3.0, 1.0, -1.0])
    >>> sign_agreement(u, g)        # the zero of u is left out
    0.6666666666666666
    >>> v = torch.tensor([0.5, -1.0, 2.0])
    >>> round(cosine_to_sign(v, v) ** 2, 6) == round(density(v), 6)
    True
"""

import math

import torch


def flatten(tensors):
    """One float64 vector from a tensor or a sequence of tensors.

    Args:
        tensors: a tensor (any shape) or a non-empty sequence of tensors;
            they are flattened and concatenated in order.

    Returns:
        A 1-D float64 tensor on the CPU (a copy; the inputs are untouched).

    Raises:
        ValueError: for an empty sequence, a non-tensor entry or a complex
            tensor.
    """
    if isinstance(tensors, torch.Tensor):
        tensors = [tensors]
    try:
        parts = list(tensors)
    except TypeError:
        raise ValueError(f"Invalid tensors: {tensors!r} (expected a tensor "
                         "or a sequence of tensors)") from None
    if not parts:
        raise ValueError("Invalid tensors: empty sequence")
    for t in parts:
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"Invalid tensors: entry of type "
                             f"{type(t).__name__} (expected tensors)")
        if t.is_complex():
            raise ValueError("Invalid tensors: complex tensors have no sign")
    return torch.cat([t.detach().reshape(-1).to("cpu", torch.float64)
                      for t in parts])


def _pair(update, reference):
    u, r = flatten(update), flatten(reference)
    if u.shape != r.shape:
        raise ValueError(f"Invalid reference: {r.numel()} entries for an "
                         f"update of {u.numel()} (they must match)")
    if u.numel() == 0:
        raise ValueError("Invalid update: no entries")
    return u, r


def sign_agreement(update, reference, exclude_zero=True):
    r"""The share of coordinates whose signs agree.

    .. math::

        \frac{1}{|I|} \sum_{i \in I}
        [\operatorname{sign}(u_i) = \operatorname{sign}(r_i)],

    where :math:`I` is the set of coordinates where neither :math:`u_i` nor
    :math:`r_i` is zero (``exclude_zero=True``; a coordinate that does not
    move, or has no signal, says nothing about signs), or every coordinate
    (``exclude_zero=False``; then a zero agrees only with a zero).

    Args:
        update: the update :math:`u` (tensor or sequence of tensors).
        reference: :math:`r`, the same number of entries as ``update``.
        exclude_zero: leave out the coordinates where either is zero.

    Returns:
        A float in [0, 1].

    Raises:
        ValueError: if the sizes differ, or no coordinate is left.
    """
    u, r = _pair(update, reference)
    su, sr = torch.sign(u), torch.sign(r)
    if exclude_zero:
        keep = (su != 0) & (sr != 0)
        if not bool(keep.any()):
            raise ValueError("Invalid update: every coordinate has a zero "
                             "in the update or the reference")
        su, sr = su[keep], sr[keep]
    return (su == sr).double().mean().item()


def cosine_similarity(update, reference):
    r"""The cosine :math:`\langle u, r\rangle / (\|u\|_2 \|r\|_2)`.

    Returns:
        A float in [-1, 1].

    Raises:
        ValueError: if the sizes differ or either vector is zero (the
            angle is undefined).
    """
    u, r = _pair(update, reference)
    nu, nr = torch.linalg.vector_norm(u), torch.linalg.vector_norm(r)
    if nu == 0 or nr == 0:
        raise ValueError("Invalid update: a zero vector has no direction")
    cos = (torch.dot(u, r) / (nu * nr)).item()
    return min(1.0, max(-1.0, cos))


def cosine_to_sign(update, reference):
    r"""The cosine between :math:`u` and :math:`\operatorname{sign}(r)`.

    It is 1 exactly when :math:`u` is a positive multiple of
    :math:`\operatorname{sign}(r)`: equal magnitudes and the signs of
    :math:`r`. When the signs agree and no entry is zero it equals
    :math:`\sqrt{\varphi(u)}` (:func:`density`), so it measures how
    uneven the magnitudes are.

    Raises:
        ValueError: if the sizes differ or either vector is zero.
    """
    u, r = _pair(update, reference)
    return cosine_similarity(u, torch.sign(r))


def density(vector):
    r"""The density :math:`\varphi(v) = \|v\|_1^2 / (d\,\|v\|_2^2)`.

    By Cauchy--Schwarz :math:`1/d \le \varphi(v) \le 1`, with 1 when all
    :math:`|v_i|` are equal and :math:`1/d` when one entry carries
    everything (:math:`d` counts the zeros too).

    Raises:
        ValueError: for a zero vector.
    """
    v = flatten(vector)
    if v.numel() == 0 or not bool((v != 0).any()):
        raise ValueError("Invalid vector: the density of zero is undefined")
    l1 = torch.linalg.vector_norm(v, ord=1)
    l2 = torch.linalg.vector_norm(v, ord=2)
    return (l1 ** 2 / (v.numel() * l2 ** 2)).item()


def magnitude_percentiles(update, percentiles=(5, 25, 50, 75, 95),
                          scale=1.0):
    r"""Percentiles of the magnitudes :math:`|u_i| / s`.

    Linear interpolation between order statistics, as
    ``numpy.percentile`` does by default. For an optimizer's step
    :math:`\Delta\theta` use ``scale=lr`` to read them in units of the
    learning rate: sign descent gives 1 at every percentile.

    Args:
        update: the vector :math:`u` (tensor or sequence of tensors).
        percentiles: numbers in [0, 100].
        scale: :math:`s > 0`.

    Returns:
        A float64 tensor with one entry per percentile.

    Raises:
        ValueError: for a percentile outside [0, 100], an empty list of
            percentiles, or a scale that is not a positive finite number.
    """
    qs = torch.as_tensor(percentiles, dtype=torch.float64).reshape(-1)
    if qs.numel() == 0:
        raise ValueError("Invalid percentiles: empty")
    if not bool(((qs >= 0) & (qs <= 100)).all()):
        raise ValueError(f"Invalid percentiles: {percentiles!r} (must be "
                         "in [0, 100])")
    try:
        s = float(scale)
    except (TypeError, ValueError):
        raise ValueError(f"Invalid scale: {scale!r} (expected a number)") \
            from None
    if not (math.isfinite(s) and s > 0):
        raise ValueError(f"Invalid scale: {scale!r} (must be > 0 and "
                         "finite)")
    u = flatten(update)
    if u.numel() == 0:
        raise ValueError("Invalid update: no entries")
    return torch.quantile(u.abs() / s, qs / 100)


def update_diagnostics(update, grad, momentum=None, lr=1.0,
                       percentiles=(5, 25, 50, 75, 95)):
    r"""Every sign measure of one step, as a dictionary.

    Args:
        update: the correction term :math:`u` of the step (the step is
            :math:`-\mathrm{lr}\cdot u`); pass ``(before - after)`` with
            ``lr`` set to the learning rate to measure a step you observed.
        grad: the gradient :math:`g` the step used.
        momentum: the momentum :math:`m` after the step, or ``None``.
        lr: the scale of ``update``, > 0 (``1.0`` if it is already
            :math:`u`).
        percentiles: percentiles of :math:`|u_i|` to report.

    Returns:
        A dict with ``agree_grad`` and ``cos_sign_grad`` (against
        :math:`\operatorname{sign}(g)`), ``cos_grad`` (against :math:`g`
        itself), ``density`` (:math:`\varphi(u)`), the same two sign
        measures against :math:`m` (``agree_momentum``,
        ``cos_sign_momentum``) when it is given, and ``p<q>`` for each
        percentile ``q`` of :math:`|u_i|` (for example ``p50``).

    Raises:
        ValueError: as the functions it calls, or for ``lr`` that is not
            positive and finite.
    """
    try:
        scale = float(lr)
    except (TypeError, ValueError):
        raise ValueError(f"Invalid lr: {lr!r} (expected a number)") \
            from None
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"Invalid lr: {lr!r} (must be > 0 and finite)")
    u = flatten(update) / scale
    out = {
        "agree_grad": sign_agreement(u, grad),
        "cos_sign_grad": cosine_to_sign(u, grad),
        "cos_grad": cosine_similarity(u, grad),
        "density": density(u),
    }
    if momentum is not None:
        out["agree_momentum"] = sign_agreement(u, momentum)
        out["cos_sign_momentum"] = cosine_to_sign(u, momentum)
    values = magnitude_percentiles(u, percentiles)
    for q, value in zip(torch.as_tensor(percentiles).reshape(-1).tolist(),
                        values.tolist()):
        out[f"p{q:g}"] = value
    return out
