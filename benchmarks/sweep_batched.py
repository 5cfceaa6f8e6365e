"""Batched sweep against a loop over configurations, on one CPU thread.

64 configurations of a 64-32-10 MLP on scikit-learn's digits (8 learning
rates times 8 exponents p of SignPowerSGD with momentum 0.9), 200 steps
of batch 32 each, trained two ways:

* batched: :func:`magcore.sweeps.run_sweep`, one ``vmap``-ed gradient
  and one pure update per step for all 64 runs;
* loop: one configuration after the other, an ``nn``-style model with
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

from magcore.problems import Problem, load_digits_split
from magcore.sweeps import grid, log_range, make_optimizer, run_sweep
from magcore.sweeps.spec import data_seed


class DigitsMLP(Problem):
    """Cross-entropy of a 64-32-10 tanh MLP on the digits, functional."""

    name = "digits-mlp-benchmark"

    def __init__(self, hidden=32):
        data = load_digits_split(test_fraction=0.2, seed=0)
        self.x, self.y = data.x_train, data.y_train
        self.n_train = self.x.shape[0]
        self.hidden = hidden

    def init(self, seed):
        gen = torch.Generator().manual_seed(seed)
        h = self.hidden
        return {"w1": torch.randn(64, h, generator=gen) / 8.0,
                "b1": torch.zeros(h),
                "w2": torch.randn(h, 10, generator=gen) / h ** 0.5,
                "b2": torch.zeros(10)}

    def sample(self, generator, batch_size):
        idx = torch.randint(self.n_train, (batch_size,),
                            generator=generator)
        return self.x[idx], self.y[idx]

    def loss(self, params, batch):
        x, y = batch
        hid = torch.tanh(x @ params["w1"] + params["b1"])
        logits = hid @ params["w2"] + params["b2"]
        picked = logits.gather(-1, y[:, None])[:, 0]
        return (logits.logsumexp(-1) - picked).mean()

    def metrics(self, params):
        with torch.no_grad():
            return {"loss": float(self.loss(params, (self.x, self.y)))}

    def config(self):
        return {"hidden": self.hidden}


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
    problem = DigitsMLP()
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
