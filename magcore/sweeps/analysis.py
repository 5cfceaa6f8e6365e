r"""Reading runs: steps to a target loss and performance profiles.

Pure functions on the records that runs leave; nothing here trains.

*Steps to target.* A run reaches a target loss :math:`f_\mathrm{tgt}` at

.. math::

    T = \min\{k_j : L(\theta_{k_j}) \le f_\mathrm{tgt}\},

the first recorded step :math:`k_j` at which the loss is at or below the
target. A run that never gets there within its budget :math:`K` is
*censored*: all that is known is :math:`T > K`, and :math:`T = +\infty`
stands for it; so does a run that diverged first. Censored values must not
be dropped before averaging over seeds (that keeps only the lucky runs);
:func:`censored_median` takes the median with them in place, which is
exact as long as fewer than half the runs are censored.

*Performance profiles* (Dolan and Moré, 2002). Given the cost
:math:`t_{p,s} > 0` of method :math:`s` on problem :math:`p` (steps to
target, say; :math:`+\infty` for a failure), the *performance ratio* and
the *profile* are

.. math::

    r_{p,s} = \frac{t_{p,s}}{\min_{s'} t_{p,s'}}, \qquad
    \rho_s(\tau) = \frac{1}{n_p}\,\bigl|\{p : r_{p,s} \le \tau\}\bigr|,
    \quad \tau \ge 1 .

:math:`\rho_s(1)` is the share of problems on which :math:`s` is the
best (ties count for every tied method) and :math:`\rho_s(\tau)` for large
:math:`\tau` the share it solves at all. A failure has
:math:`r_{p,s} = +\infty` and counts for no :math:`\tau`; a problem that
every method fails counts for none of them.
"""

import math
import statistics

import numpy as np

__all__ = ["censored_median", "first_hit", "performance_profile",
           "performance_ratios", "steps_to_target", "target_loss"]


def _finite_float(name, value):
    try:
        out = float(value)
    except (TypeError, ValueError):
        out = math.nan
    if not math.isfinite(out):
        raise ValueError(f"Invalid {name}: {value!r} (expected a finite "
                         "number)")
    return out


def first_hit(steps, values, target):
    """The first step whose value is at or below ``target``.

    Args:
        steps: the recorded steps, increasing.
        values: the value at each step; NaN (a diverged run's records)
            never counts as reaching the target.
        target: a finite number.

    Returns:
        The step as a float, or ``inf`` when no value reaches the target
        (a censored run).

    Raises:
        ValueError: for a non-finite target, lengths that differ, or
            steps that do not increase.

    Example:
        >>> first_hit([0, 10, 20, 30], [5.0, 2.0, 0.9, 0.5], 1.0)
        20.0
        >>> first_hit([0, 10], [5.0, 2.0], 1.0)
        inf
    """
    target = _finite_float("target", target)
    steps = [float(s) for s in steps]
    values = [float(v) for v in values]
    if len(steps) != len(values):
        raise ValueError(f"Invalid values: {len(values)} values for "
                         f"{len(steps)} steps (expected equal lengths)")
    if any(b <= a for a, b in zip(steps, steps[1:])):
        raise ValueError(f"Invalid steps: {steps!r} (expected increasing)")
    for step, value in zip(steps, values):
        if value <= target:
            return step
    return math.inf


def steps_to_target(run, target, metric="loss"):
    r"""Steps a run took to reach ``target``; ``inf`` if it never did.

    Args:
        run: a :class:`~magcore.sweeps.RunResult`, or a pair
            ``(steps, values)``.
        target: the target value :math:`f_\mathrm{tgt}`.
        metric: for a ``RunResult``, the recorded metric to read (its
            values at ``run.steps``), or ``"batch_loss"`` for the loss of
            every step :math:`0, \dots, K-1` followed by the recorded loss
            at :math:`K` (with the full batch, :math:`L(\theta_k)` at every
            step).

    Returns:
        :math:`T` as a float; ``inf`` for a censored run and for one
        that diverged before reaching the target (the engine records NaN
        from the divergence on). A run that reached the target and
        diverged later keeps its :math:`T`, as in time-to-result
        benchmarks.

    Raises:
        ValueError: for an unknown metric or a bad target.
    """
    if isinstance(run, tuple) and len(run) == 2:
        return first_hit(run[0], run[1], target)
    if metric == "batch_loss":
        steps = list(range(len(run.batch_loss))) + [run.steps[-1]]
        values = list(run.batch_loss) + [run.metrics["loss"][-1]]
    elif metric in run.metrics:
        steps, values = run.steps, run.metrics[metric]
    else:
        raise ValueError(f"Invalid metric: {metric!r} (expected "
                         f"'batch_loss' or one of {sorted(run.metrics)})")
    return first_hit(steps, values, target)


def target_loss(initial, best, tol):
    r"""The loss that counts as solved: a share ``1 - tol`` of the best
    decrease, :math:`f_\mathrm{tgt} = f_L + \mathrm{tol}\,(f_0 - f_L)`.

    This is the convergence test of Moré and Wild's data profiles: a run
    from :math:`f_0` has solved the problem once it has made
    :math:`1 - \mathrm{tol}` of the decrease :math:`f_0 - f_L` that the
    best method made.

    Args:
        initial: :math:`f_0`, the loss at the start.
        best: :math:`f_L \le f_0`, the lowest loss any method reached.
        tol: a number in (0, 1).

    Raises:
        ValueError: for non-finite values, ``best > initial`` or a ``tol``
            outside (0, 1).

    Example:
        >>> target_loss(10.0, 0.0, 0.01)
        0.1
    """
    f0 = _finite_float("initial", initial)
    fl = _finite_float("best", best)
    tol = _finite_float("tol", tol)
    if not 0 < tol < 1:
        raise ValueError(f"Invalid tol: {tol!r} (expected 0 < tol < 1)")
    if fl > f0:
        raise ValueError(f"Invalid best: {best!r} (above the initial "
                         f"value {initial!r})")
    return fl + tol * (f0 - fl)


def censored_median(values):
    """The median of costs some of which are censored (``inf``).

    The sorted values' middle one (the mean of the middle two for an even
    count), with ``inf`` sorted last; it is finite exactly when fewer
    than half the values (for an even count: at most ``n/2 - 1``) are
    censored. NaN counts as censored.

    Raises:
        ValueError: for an empty sequence.

    Example:
        >>> censored_median([30.0, float("inf"), 10.0, 20.0, 40.0])
        30.0
        >>> censored_median([10.0, float("inf"), float("inf")])
        inf
    """
    values = [math.inf if math.isnan(float(v)) else float(v)
              for v in values]
    if not values:
        raise ValueError("Invalid values: empty (need one)")
    if any(math.isinf(v) for v in values):
        ordered = sorted(values)
        n = len(ordered)
        if n % 2:
            return ordered[n // 2]
        low, high = ordered[n // 2 - 1], ordered[n // 2]
        return math.inf if math.isinf(high) else (low + high) / 2
    return float(statistics.median(values))


def _cost_table(costs):
    if not isinstance(costs, dict) or not costs:
        raise ValueError(f"Invalid costs: {costs!r} (expected a non-empty "
                         "dict of method -> per-problem costs)")
    names = list(costs)
    rows = []
    for name in names:
        try:
            row = np.asarray(costs[name], dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"Invalid costs for {name!r}: "
                             f"{costs[name]!r} (expected numbers)") from None
        if row.ndim != 1 or row.size == 0:
            raise ValueError(f"Invalid costs for {name!r}: "
                             f"{costs[name]!r} (expected a non-empty "
                             "sequence)")
        rows.append(row)
    n = rows[0].size
    for name, row in zip(names, rows):
        if row.size != n:
            raise ValueError(f"Invalid costs for {name!r}: {row.size} "
                             f"problems, {names[0]!r} has {n}")
        row[np.isnan(row)] = np.inf
        if (row <= 0).any():
            raise ValueError(f"Invalid costs for {name!r}: "
                             f"{row.tolist()!r} (expected costs > 0; inf "
                             "or nan for a failure)")
    return names, np.stack(rows, axis=1)


def performance_ratios(costs):
    r"""The performance ratios :math:`r_{p,s}` of a cost table.

    Args:
        costs: a ``dict`` from a method's name to its costs, one per
            problem, in the same problem order for every method; each
            cost > 0, ``inf`` or ``nan`` for a failure.

    Returns:
        A ``dict`` from name to a float64 array of ratios
        :math:`t_{p,s}/\min_{s'} t_{p,s'} \ge 1`; ``inf`` for a failure
        and on a problem every method failed.

    Raises:
        ValueError: for an empty table, rows of different lengths, or a
            cost <= 0.

    Example:
        >>> r = performance_ratios({"a": [1.0, 4.0], "b": [2.0, 2.0]})
        >>> r["a"].tolist(), r["b"].tolist()
        ([1.0, 2.0], [2.0, 1.0])
    """
    names, table = _cost_table(costs)
    best = table.min(axis=1, keepdims=True)
    with np.errstate(invalid="ignore"):
        ratios = table / best
    ratios[~np.isfinite(best[:, 0])] = np.inf
    return {name: ratios[:, j] for j, name in enumerate(names)}


def performance_profile(costs, taus):
    r"""The performance profile :math:`\rho_s(\tau)` of each method.

    Args:
        costs: as in :func:`performance_ratios`.
        taus: the factors :math:`\tau \ge 1` to evaluate at.

    Returns:
        A ``dict`` from name to a float64 array: the share of problems on
        which the method's cost is within a factor ``tau`` of the best,
        at each ``tau``.

    Raises:
        ValueError: for a bad table, or a ``tau`` below 1 or not a
            number.

    Example:
        >>> prof = performance_profile({"a": [1.0, 4.0], "b": [2.0, 2.0]},
        ...                            [1.0, 2.0])
        >>> prof["a"].tolist(), prof["b"].tolist()
        ([0.5, 1.0], [0.5, 1.0])
    """
    try:
        taus = np.asarray(taus, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"Invalid taus: {taus!r} (expected numbers "
                         ">= 1)") from None
    if taus.size == 0 or np.isnan(taus).any() or (taus < 1).any():
        raise ValueError(f"Invalid taus: {taus.tolist()!r} (expected "
                         "numbers >= 1)")
    ratios = performance_ratios(costs)
    return {name: (r[:, None] <= taus[None, :]).mean(axis=0)
            for name, r in ratios.items()}
