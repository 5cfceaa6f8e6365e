r"""The sweep engine: many runs of one problem trained as one computation.

Runs that share a problem, an update rule, a batch size, a step budget
and a recording plan (:meth:`RunSpec.batch_key`) are trained together.
Their parameters are stacked along a leading run axis, the gradients of
all runs come from one call of

.. math::

    (g_i, \ell_i)_{i=1}^R = \operatorname{vmap}\big(
        \operatorname{grad\_and\_value}(L)\big)
        \big((\theta_i)_{i}, (B_i)_{i}\big),

where :math:`L` is the problem's pure loss and :math:`B_i` the minibatch
of run :math:`i`, and the update is the pure rule of
:mod:`magcore.optim.functional` with one hyperparameter value per run
(the learning rate times the run's schedule factor :math:`s(k)`). Nothing
mixes runs: each run's result equals training it alone, up to rounding
(the tests check it in float64).

Batches: run :math:`i` draws its minibatches with its own
``torch.Generator`` seeded with ``data_seed`` of
its seed, so it sees the same batches whichever runs train with it; runs
with the same seed share batches, and a batch is drawn once per distinct
seed and step.

Records: at step 0 and at the steps of :meth:`RunSpec.record_steps` the
engine calls ``problem.metrics`` on each run's parameters (moved to the
CPU), and it keeps the minibatch loss :math:`\ell_i` of every step.

Divergence: run :math:`i` is flagged as diverged at the first iterate
:math:`\theta_k` whose minibatch loss or recorded loss is not finite or
exceeds ``divergence`` times :math:`|L(\theta_0)|`. Its records after that
are NaN; it keeps stepping with the others (it cannot affect them), and a
batch stops early once every run in it has diverged. Diverged runs are
kept in the results, with the flag.

Device: CUDA when available unless ``device`` says otherwise. If the
problem has a ``to(device)`` method, the loss is taken from the problem it
returns; the batches and the parameters are moved to the device.
"""

import math
import time
from dataclasses import dataclass, field

import torch
from torch.func import grad_and_value, vmap

from ..optim.functional import init_state, stack_hparams, step
from .spec import RunSpec, data_seed, schedule_factors

__all__ = ["RunResult", "SweepResult", "default_device", "run_sweep",
           "train_batch"]


def default_device():
    """``"cuda"`` when a CUDA device is available, else ``"cpu"``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def _resolve_device(device):
    if device is None:
        device = default_device()
    try:
        return torch.device(device)
    except (TypeError, RuntimeError):
        raise ValueError(f"Invalid device: {device!r}") from None


@dataclass
class RunResult:
    """What one run leaves behind.

    Attributes:
        spec: the :class:`RunSpec` that was run.
        steps: the recorded steps (0 first, ``spec.steps`` last).
        metrics: metric name -> list of values at ``steps`` (NaN after a
            divergence).
        batch_loss: the minibatch loss of each step 0..K-1 (NaN after a
            divergence).
        diverged: whether the run diverged.
        diverged_at: the index k of the first bad iterate, or ``None``.
        seconds: wall time of the run's batch divided by its size.
        device: the device it ran on.
        torch_version: the torch version it ran with.
    """

    spec: RunSpec
    steps: list
    metrics: dict
    batch_loss: list
    diverged: bool
    diverged_at: object
    seconds: float
    device: str
    torch_version: str = field(default=torch.__version__)

    def final_loss(self, last=3):
        r"""The tuning criterion: mean loss over the last checkpoints.

        It is :math:`\frac1m \sum_{j=n-m+1}^{n} L(\theta_{k_j})`, the mean
        of ``metrics["loss"]`` at the last :math:`m` = ``last`` recorded
        steps, and :math:`+\infty` for a diverged run.
        """
        if isinstance(last, bool) or not isinstance(last, int) or last < 1:
            raise ValueError(f"Invalid last: {last!r} (expected an int "
                             ">= 1)")
        if self.diverged:
            return math.inf
        values = self.metrics["loss"][-last:]
        return sum(values) / len(values)

    def to_dict(self):
        """The result as a JSON-ready ``dict`` (non-finite -> ``None``)."""
        return {
            "steps": list(self.steps),
            "metrics": {k: _jsonable(v) for k, v in self.metrics.items()},
            "batch_loss": _jsonable(self.batch_loss),
            "diverged": bool(self.diverged),
            "diverged_at": self.diverged_at,
            "seconds": float(self.seconds),
            "device": self.device,
            "torch_version": self.torch_version,
        }

    @classmethod
    def from_dict(cls, spec, data):
        """Rebuild a result of ``spec`` from :meth:`to_dict`'s output."""
        return cls(
            spec=spec, steps=[int(s) for s in data["steps"]],
            metrics={k: _floats(v) for k, v in data["metrics"].items()},
            batch_loss=_floats(data["batch_loss"]),
            diverged=bool(data["diverged"]),
            diverged_at=data["diverged_at"],
            seconds=float(data["seconds"]), device=data["device"],
            torch_version=data["torch_version"])


def _jsonable(values):
    return [v if math.isfinite(v) else None for v in map(float, values)]


def _floats(values):
    return [math.nan if v is None else float(v) for v in values]


@dataclass
class SweepResult:
    """The results of a sweep, in the order of its specs.

    Attributes:
        results: one :class:`RunResult` per spec given.
        n_trained: runs trained by this call.
        n_cached: runs read from the store instead.
        seconds: wall time of the call.
        device: the device used.
        summary: the one-line summary.
    """

    results: list
    n_trained: int
    n_cached: int
    seconds: float
    device: str
    summary: str


def _slice(params, i):
    return {k: v[i].detach().cpu() for k, v in params.items()}


def _check_batch(specs):
    if len(specs) == 0:
        raise ValueError("Invalid specs: empty (need one run)")
    for spec in specs:
        if not isinstance(spec, RunSpec):
            raise ValueError(f"Invalid spec: {spec!r} (expected a RunSpec)")
    key = specs[0].batch_key()
    for spec in specs[1:]:
        if spec.batch_key() != key:
            raise ValueError(
                f"Invalid specs: {spec.canonical()} cannot share a batch "
                f"with {specs[0].canonical()} (problem, method, batch "
                "size, steps and checkpoints must agree)")


def train_batch(specs, device=None, bar=None):
    """Train runs that share a :meth:`RunSpec.batch_key` as one batch.

    Args:
        specs: a list of :class:`RunSpec` with one batch key.
        device: torch device or its name; ``None`` picks
            :func:`default_device`.
        bar: an optional tqdm bar, advanced by ``len(specs)`` per step.

    Returns:
        A list of :class:`RunResult`, in the order of ``specs``.

    Raises:
        ValueError: for an empty list, a non-spec, or specs that cannot
            share a batch.
    """
    _check_batch(specs)
    dev = _resolve_device(device)
    start = time.perf_counter()
    first = specs[0]
    problem, method, n_runs = first.problem, first.method, len(specs)
    lossy = problem.to(dev) if hasattr(problem, "to") else problem

    inits = [problem.init(s.seed) for s in specs]
    params = {k: torch.stack([p[k] for p in inits]).to(dev)
              for k in inits[0]}
    dtype = next(iter(params.values())).dtype
    hp = stack_hparams(method, [s.hparams_dict() for s in specs], dtype,
                       dev)
    factors = torch.tensor([schedule_factors(s) for s in specs],
                           dtype=dtype, device=dev).T.contiguous()
    state = init_state(method, params)

    seeds = sorted({s.seed for s in specs})
    gens = [torch.Generator().manual_seed(data_seed(s)) for s in seeds]
    where = torch.tensor([seeds.index(s.seed) for s in specs], device=dev)
    shared = len(seeds) == 1
    grad_fn = vmap(grad_and_value(lossy.loss),
                   in_dims=(0, None if shared else 0))

    record = first.record_steps()
    record_set = set(record[1:])
    records = [{} for _ in specs]
    bad_at = [None] * n_runs

    def measure(k):
        for i in range(n_runs):
            if bad_at[i] is not None:
                values = {name: math.nan for name in records[i]}
            else:
                values = problem.metrics(_slice(params, i))
                loss = float(values["loss"])
                if not math.isfinite(loss) or abs(loss) > limits[i]:
                    bad_at[i] = k
                    values = {name: math.nan for name in values}
            for name, value in values.items():
                records[i].setdefault(name, []).append(float(value))

    limits = [math.inf] * n_runs
    measure(0)
    loss0 = [r["loss"][0] for r in records]
    limits = [s.divergence * abs(v) for s, v in zip(specs, loss0)]
    limit_t = torch.tensor(limits, dtype=dtype, device=dev)
    first_bad = torch.full((n_runs,), -1, dtype=torch.long, device=dev)
    batch_losses = []
    steps_done = 0
    for k in range(first.steps):
        drawn = [problem.sample(g, first.batch_size) for g in gens]
        if shared:
            batch = tuple(t.to(dev) for t in drawn[0])
        else:
            batch = tuple(torch.stack(ts).to(dev)[where]
                          for ts in zip(*drawn))
        grads, losses = grad_fn(params, batch)
        losses = losses.detach()
        batch_losses.append(losses)
        bad = ~torch.isfinite(losses) | (losses.abs() > limit_t)
        first_bad = torch.where((first_bad < 0) & bad,
                                torch.full_like(first_bad, k), first_bad)
        hk = dict(hp, lr=hp["lr"] * factors[k])
        params, state = step(method, params, grads, state, hk)
        steps_done = k + 1
        if bar is not None:
            bar.update(n_runs)
        if steps_done in record_set:
            for i, j in enumerate(first_bad.tolist()):
                if j >= 0 and bad_at[i] is None:
                    bad_at[i] = j
            measure(steps_done)
            if all(b is not None for b in bad_at):
                break
    if bar is not None and steps_done < first.steps:
        bar.update(n_runs * (first.steps - steps_done))

    for i, j in enumerate(first_bad.tolist()):
        if j >= 0 and (bad_at[i] is None or j < bad_at[i]):
            bad_at[i] = j
    losses_all = torch.stack(batch_losses).T.cpu().tolist()
    n_recorded = len(records[0]["loss"])
    seconds = (time.perf_counter() - start) / n_runs
    results = []
    for i, spec in enumerate(specs):
        curve = losses_all[i] + [math.nan] * (first.steps - steps_done)
        metrics = {name: values + [math.nan] * (len(record) - n_recorded)
                   for name, values in records[i].items()}
        if bad_at[i] is not None:
            curve = [v if k < bad_at[i] else math.nan
                     for k, v in enumerate(curve)]
            metrics = {name: [v if s < bad_at[i] else math.nan
                              for s, v in zip(record, values)]
                       for name, values in metrics.items()}
        results.append(RunResult(
            spec=spec, steps=list(record), metrics=metrics,
            batch_loss=curve, diverged=bad_at[i] is not None,
            diverged_at=bad_at[i], seconds=seconds, device=str(dev)))
    return results


def _seed_text(seeds):
    seeds = sorted(set(seeds))
    if len(seeds) <= 4:
        return ",".join(map(str, seeds))
    return f"{seeds[0]}..{seeds[-1]} ({len(seeds)})"


def run_sweep(specs, store=None, device=None, max_batch=512,
              progress=True):
    """Train every run of a sweep, batched, reusing stored results.

    Runs already in ``store`` (same description, same code version) are
    read, not trained. The others are grouped by
    :meth:`RunSpec.batch_key` into batches of at most ``max_batch`` runs;
    each batch's results are written to the store as soon as it ends, so
    an interrupted sweep loses at most the batch in progress.

    Args:
        specs: an iterable of :class:`RunSpec` (duplicates run once).
        store: a :class:`ResultStore` or ``None``.
        device: torch device or its name; ``None``: CUDA if available.
        max_batch: the most runs trained in one computation, >= 1.
        progress: show a tqdm bar over run-steps and print the one-line
            summary at the end.

    Returns:
        A :class:`SweepResult`.

    Raises:
        ValueError: for a bad spec, device or ``max_batch``.

    Example:
        >>> from magcore.problems.toy import LinearRegression
        >>> from magcore.sweeps import grid
        >>> specs = grid(LinearRegression(), "signpowersgd", steps=50,
        ...              batch_size=8, lr=[0.01, 0.1], p=[0.0, 0.5, 1.0])
        >>> sweep = run_sweep(specs, device="cpu", progress=False)
        >>> sweep.n_trained, len(sweep.results[0].batch_loss)
        (6, 50)
        >>> best = min(sweep.results, key=lambda r: r.final_loss())
        >>> best.spec.hparams_dict()["p"], best.spec.hparams_dict()["lr"]
        (0.5, 0.1)
    """
    specs = list(specs)
    if isinstance(max_batch, bool) or not isinstance(max_batch, int) \
            or max_batch < 1:
        raise ValueError(f"Invalid max_batch: {max_batch!r} (expected an "
                         "int >= 1)")
    for spec in specs:
        if not isinstance(spec, RunSpec):
            raise ValueError(f"Invalid spec: {spec!r} (expected a RunSpec)")
    dev = _resolve_device(device)
    start = time.perf_counter()
    found, pending, groups, pending_set = {}, [], {}, set()
    for spec in specs:
        if spec in found or spec in pending_set:
            continue
        cached = store.get(spec) if store is not None else None
        if cached is not None:
            found[spec] = cached
        else:
            groups.setdefault(spec.batch_key(), []).append(spec)
            pending.append(spec)
            pending_set.add(spec)
    n_cached = len(found)
    chunks = [group[i:i + max_batch] for group in groups.values()
              for i in range(0, len(group), max_batch)]
    total = sum(len(c) * c[0].steps for c in chunks)
    bar = None
    if progress and total:
        from tqdm import tqdm
        bar = tqdm(total=total, desc="sweep", unit="run-step",
                   unit_scale=True, leave=False)
    try:
        for chunk in chunks:
            for result in train_batch(chunk, dev, bar):
                if store is not None:
                    store.put(result)
                found[result.spec] = result
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start
    results = [found[s] for s in specs]
    n_div = sum(r.diverged for r in results)
    summary = (f"sweep: {len(found)} runs ({len(pending)} trained, "
               f"{n_cached} from store, {n_div} diverged), seeds "
               f"{_seed_text(s.seed for s in specs) or '-'}, device {dev}, "
               f"{seconds:.1f} s, torch {torch.__version__}")
    if progress:
        print(summary)
    return SweepResult(results=results, n_trained=len(pending),
                       n_cached=n_cached, seconds=seconds, device=str(dev),
                       summary=summary)
