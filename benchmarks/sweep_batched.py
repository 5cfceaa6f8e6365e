"""Batched sweep against a loop over configurations, on one CPU thread.

64 configurations of the digits MLP of :mod:`magcore.problems`
(``make_problem("digits-mlp", hidden=(32,))``, 64-32-10; 8 learning
rates times 8 exponents p of SignPowerSGD with momentum 0.9), 200 steps
of batch 32 each, trained two ways:

* batched: :func:`magcore.sweeps.run_sweep`, one ``vmap``-ed gradient
  and one pure update per step for all 64 runs;
* loop: one configuration after the other, the same problem's loss with
  autograd and the :class:`magcore.SignPowerSGD` optimizer, the same
  batches and the same checkpoints.

Prints both wall times, the speed-up and the largest difference between
the two ways' final losses (float32, and sign-like steps amplify rounding,
so not zero; the tests check the same comparison in float64). Timings on
a shared machine are noisy; each way is timed ``--repeats`` times,
interleaved, and the fastest kept. Usage::

    python benchmarks/sweep_batched.py [--steps 200] [--threads 1]
"""

import argparse
import time

import torch

from magcore.problems import make_problem
from magcore.sweeps import grid, log_range, make_optimizer, run_sweep
from magcore.sweeps.spec import data_seed


def loop(specs):
    """Train each spec alone with autograd and a torch.optim optimizer."""
    finals = []
    for spec in specs:
        problem = spec.problem
        params = {k: torch.nn.Parameter(v)
                  for k, v in problem.init(spec.seed).items()}
        opt = make_optimizer(spec.method, list(params.values()),
                             spec.hparams_dict())
        gen = torch.Generator().manual_seed(data_seed(spec.seed))
        record = set(spec.record_steps())
        metrics = [problem.metrics(params)]
        for k in range(spec.steps):
            batch = problem.sample(gen, spec.batch_size)
            opt.zero_grad()
            problem.loss(params, batch).backward()
            opt.step()
            if k + 1 in record:
                metrics.append(problem.metrics(params))
        finals.append(metrics[-1]["loss"])
    return finals


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2,
                        help="time each way this often; keep the fastest")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    problem = make_problem("digits-mlp", hidden=(32,))
    specs = grid(problem, "signpowersgd", steps=args.steps, batch_size=32,
                 checkpoints=2, lr=log_range(1e-3, 1e-1, 8),
                 p=[0.0, 0.15, 0.3, 0.45, 0.6, 0.75, 0.9, 1.0],
                 momentum=0.9)
    run_sweep(specs[:2], device="cpu", progress=False)   # warm-up
    t_batched = t_loop = float("inf")
    for _ in range(args.repeats):
        start = time.perf_counter()
        batched = run_sweep(specs, device="cpu", progress=False)
        t_batched = min(t_batched, time.perf_counter() - start)
        start = time.perf_counter()
        finals = loop(specs)
        t_loop = min(t_loop, time.perf_counter() - start)
    diverged = sum(r.diverged for r in batched.results)
    diffs = [abs(r.metrics["loss"][-1] - f)
             for r, f in zip(batched.results, finals) if not r.diverged]
    print(f"{len(specs)} configurations x {args.steps} steps, "
          f"{args.threads} thread(s), torch {torch.__version__}, fastest "
          f"of {args.repeats}")
    print(f"batched: {t_batched:.2f} s   loop: {t_loop:.2f} s   "
          f"speed-up: {t_loop / t_batched:.1f}x")
    print(f"largest |final loss batched - loop|: {max(diffs):.2e} "
          f"({diverged} diverged in the batched sweep)")


if __name__ == "__main__":
    main()
