r"""How curvature grows with the gradient: a Hessian diagonal and its slope.

The scale-free argument of the book says: if, coordinate by coordinate,
the curvature grows like a power of the gradient,

.. math::

    H_{ii} \propto |g_i|^{\alpha},

then the update :math:`\operatorname{sign}(g)\,|g|^{p}` shrinks every
coordinate's error by the same factor exactly when :math:`p = 1-\alpha`
(:math:`\alpha = 0`, a quadratic, gives gradient descent; :math:`\alpha
= 1` gives sign descent). This module measures :math:`\alpha` on a model.

Hessian-vector products are forward-over-reverse,
:math:`Hv = \frac{d}{dt}\nabla L(\theta + tv)\big|_{t=0}`, computed with
``torch.func.jvp`` of ``torch.func.grad``. The diagonal comes from
Hutchinson probes: for Rademacher :math:`z` (entries :math:`\pm 1` with
probability one half), :math:`\mathbb E[z \odot Hz] = \operatorname{diag}
H`, since :math:`(z \odot Hz)_i = H_{ii} + \sum_{j \ne i} z_i z_j H_{ij}`
and the second term has mean zero; its variance is
:math:`\sum_{j\ne i} H_{ij}^2`, divided by the number of probes.

The slope: the coordinates (with :math:`g_i \ne 0`, the extreme tails
trimmed) are cut into bins of equal width in :math:`\log|g_i|`; in bin
:math:`b` the mean
:math:`\bar h_b` of the diagonal estimates and the mean :math:`\bar x_b`
of :math:`\log|g_i|` are taken, and :math:`\alpha` is the least-squares
slope of :math:`\log \bar h_b` against :math:`\bar x_b` over the bins
with :math:`\bar h_b > 0`. Averaging inside a bin before the logarithm
keeps the estimate unbiased for the bin's mean curvature (the
logarithm of a single noisy probe would not be).

Every function here is pure: it takes a problem's parameter dict and a
batch and changes neither.
"""

import math
from dataclasses import dataclass

import torch
from torch.func import grad, jvp, vmap

__all__ = ["SlopeFit", "binned_slope", "curvature_slopes",
           "exact_hessian_diagonal", "gradient", "hessian_vector_product",
           "hutchinson_diagonal", "rademacher_like"]


def _loss_fn(problem, batch):
    def loss(params):
        return problem.loss(params, batch)
    return loss


def _check_int(name, value, low):
    if isinstance(value, bool) or not isinstance(value, int) \
            or value < low:
        raise ValueError(f"Invalid {name}: {value!r} (expected an int >= "
                         f"{low})")


def gradient(problem, params, batch):
    """The gradient of ``problem.loss(., batch)`` at ``params``, a dict."""
    return grad(_loss_fn(problem, batch))(params)


def hessian_vector_product(problem, params, batch, vec):
    r"""The Hessian of the batch loss at ``params`` times ``vec``.

    Computed as the directional derivative of the gradient,
    :math:`Hv = \partial_t \nabla L(\theta + t v)|_{t=0}` (one
    ``torch.func.jvp`` of ``torch.func.grad``).

    Args:
        problem: a :class:`~magcore.problems.Problem`.
        params: its parameter dict.
        batch: a batch of ``problem`` (a tuple of tensors).
        vec: a dict with the keys and shapes of ``params``.

    Returns:
        A dict of tensors, :math:`Hv`.

    Raises:
        ValueError: if ``vec`` does not match ``params``.
    """
    if set(vec) != set(params) or any(
            vec[k].shape != params[k].shape for k in params):
        raise ValueError("Invalid vec: its keys and shapes must be those "
                         f"of params ({sorted(params)})")
    vec = {k: vec[k] for k in params}
    return jvp(grad(_loss_fn(problem, batch)), (params,), (vec,))[1]


def rademacher_like(params, generator):
    """A dict of independent Rademacher tensors (entries +-1) shaped like
    ``params``, drawn with ``generator``."""
    out = {}
    for name, value in params.items():
        bits = torch.randint(2, value.shape, generator=generator)
        out[name] = (2 * bits - 1).to(dtype=value.dtype,
                                      device=value.device)
    return out


def hutchinson_diagonal(problem, params, batch, n_probes=16, seed=0,
                        chunk=8):
    r"""Hutchinson's estimate of the Hessian diagonal of the batch loss.

    .. math::

        \widehat{\operatorname{diag} H} = \frac1n \sum_{j=1}^{n}
        z_j \odot H z_j, \qquad z_j \text{ Rademacher},

    unbiased, with per-coordinate variance
    :math:`\sum_{k\ne i} H_{ik}^2 / n`; exact for any :math:`n` when
    :math:`H` is diagonal.

    Args:
        problem, params, batch: as in :func:`hessian_vector_product`.
        n_probes: the number of probes :math:`n`, >= 1.
        seed: seeds the probes' generator.
        chunk: how many probes are pushed through ``vmap`` at once.

    Returns:
        A dict of tensors shaped like ``params``.

    Raises:
        ValueError: for a bad ``n_probes``, ``seed`` or ``chunk``.
    """
    _check_int("n_probes", n_probes, 1)
    _check_int("seed", seed, 0)
    _check_int("chunk", chunk, 1)
    gen = torch.Generator().manual_seed(seed)
    loss = _loss_fn(problem, batch)

    def z_hz(z):
        hz = jvp(grad(loss), (params,), (z,))[1]
        return {k: z[k] * hz[k] for k in params}

    total = {k: torch.zeros_like(v) for k, v in params.items()}
    done = 0
    while done < n_probes:
        m = min(chunk, n_probes - done)
        probes = [rademacher_like(params, gen) for _ in range(m)]
        stacked = {k: torch.stack([z[k] for z in probes]) for k in params}
        values = vmap(z_hz)(stacked)
        for k in params:
            total[k] = total[k] + values[k].sum(0)
        done += m
    return {k: v / n_probes for k, v in total.items()}


def exact_hessian_diagonal(problem, params, batch, chunk=64):
    """The exact Hessian diagonal, from the Hessian-vector products with
    the unit vectors (``chunk`` of them at a time through ``vmap``); for
    small problems and tests.

    Returns:
        A dict of tensors shaped like ``params``.
    """
    _check_int("chunk", chunk, 1)
    loss = _loss_fn(problem, batch)

    def column(unit):
        return jvp(grad(loss), (params,), (unit,))[1]

    out = {}
    for name, value in params.items():
        n = value.numel()
        eye = torch.eye(n, dtype=value.dtype, device=value.device)
        units = {k: torch.zeros((n, *v.shape), dtype=v.dtype,
                                device=v.device)
                 for k, v in params.items()}
        units[name] = eye.reshape(n, *value.shape)
        cols = vmap(column, chunk_size=chunk)(units)[name].reshape(n, n)
        out[name] = torch.diagonal(cols).reshape(value.shape)
    return out


@dataclass
class SlopeFit:
    r"""The binned fit :math:`\log \bar h_b \approx c + \alpha \bar x_b`.

    Attributes:
        alpha: the slope (``nan`` with fewer than 3 usable bins).
        intercept: :math:`c`.
        log_g: :math:`\bar x_b`, the mean of :math:`\log|g_i|` per bin.
        mean_h: :math:`\bar h_b`, the mean diagonal estimate per bin
            (the bins with :math:`\bar h_b \le 0` included, unused).
        counts: coordinates per bin.
        n_used: bins with :math:`\bar h_b > 0`, used by the fit.
    """

    alpha: float
    intercept: float
    log_g: list
    mean_h: list
    counts: list
    n_used: int


def binned_slope(grad_abs, h_diag, n_bins=8, trim=0.01):
    r"""The slope :math:`\alpha` of log curvature against log gradient.

    The coordinates with :math:`g_i \ne 0` whose :math:`\log|g_i|` lies
    between its ``trim`` and ``1 - trim`` quantiles are cut into
    ``n_bins`` bins of equal width in :math:`\log|g_i|`; a bin with fewer
    than ``n / (4 n_bins)`` of the :math:`n` coordinates kept is dropped.
    Narrow bins keep the difference between the mean of :math:`h` in a
    bin and :math:`h` at the bin's mean :math:`\log|g|` small, and
    trimming keeps the sparse tails, whose bins would be wide, out.

    Args:
        grad_abs: a tensor of :math:`|g_i|` (any shape).
        h_diag: a tensor of diagonal curvatures, the same number of
            entries.
        n_bins: the number of bins, >= 3.
        trim: the share of coordinates cut from each tail, in [0, 0.5).

    Returns:
        A :class:`SlopeFit` (``nan`` slope with fewer than 3 bins of
        positive mean).

    Raises:
        ValueError: for a bad ``n_bins`` or ``trim``, or sizes that do
            not agree.

    Example:
        >>> g = torch.logspace(-3, 0, 200, dtype=torch.float64)
        >>> round(binned_slope(g, 5 * g ** 0.5).alpha, 2)
        0.5
    """
    _check_int("n_bins", n_bins, 3)
    if not 0.0 <= trim < 0.5:
        raise ValueError(f"Invalid trim: {trim!r} (expected a number in "
                         "[0, 0.5))")
    g = torch.as_tensor(grad_abs).detach().reshape(-1).double().cpu()
    h = torch.as_tensor(h_diag).detach().reshape(-1).double().cpu()
    if g.numel() != h.numel():
        raise ValueError(f"Invalid h_diag: {h.numel()} entries for "
                         f"{g.numel()} gradient entries")
    keep = g > 0
    x, h = g[keep].log(), h[keep]
    log_g, mean_h, counts = [], [], []
    if x.numel() > 0:
        lo, hi = torch.quantile(x, torch.tensor(
            [trim, 1 - trim], dtype=torch.float64)).tolist()
        inside = (x >= lo) & (x <= hi)
        x, h = x[inside], h[inside]
        width = (hi - lo) / n_bins
        which = torch.zeros_like(x, dtype=torch.long) if width == 0 else \
            ((x - lo) / width).floor().long().clamp(0, n_bins - 1)
        least = x.numel() / (4 * n_bins)
        for b in range(n_bins):
            sel = which == b
            count = int(sel.sum())
            if count > 0 and count >= least:
                log_g.append(float(x[sel].mean()))
                mean_h.append(float(h[sel].mean()))
                counts.append(count)
    used = [(a, math.log(b)) for a, b in zip(log_g, mean_h) if b > 0]
    alpha = intercept = math.nan
    if len(used) >= 3:
        xs = torch.tensor([u[0] for u in used], dtype=torch.float64)
        ys = torch.tensor([u[1] for u in used], dtype=torch.float64)
        xc = xs - xs.mean()
        if float((xc * xc).sum()) > 0:
            alpha = float((xc * (ys - ys.mean())).sum() / (xc * xc).sum())
            intercept = float(ys.mean() - alpha * xs.mean())
    return SlopeFit(alpha=alpha, intercept=intercept, log_g=log_g,
                    mean_h=mean_h, counts=counts, n_used=len(used))


def curvature_slopes(problem, params, batch, n_probes=16, n_bins=8,
                     seed=0):
    r"""The slope :math:`\alpha` per parameter tensor and over all of them.

    Takes the gradient and the Hutchinson diagonal
    (:func:`hutchinson_diagonal`) of the batch loss at ``params`` and fits
    :func:`binned_slope` within each tensor and over every coordinate of
    the model together (key ``"all"``).

    Returns:
        One :class:`SlopeFit` per tensor name, and one under ``"all"``.
    """
    g = gradient(problem, params, batch)
    h = hutchinson_diagonal(problem, params, batch, n_probes=n_probes,
                            seed=seed)
    fits = {name: binned_slope(g[name].abs(), h[name], n_bins)
            for name in params}
    fits["all"] = binned_slope(
        torch.cat([g[k].abs().reshape(-1) for k in params]),
        torch.cat([h[k].reshape(-1) for k in params]), n_bins)
    return fits
