"""One rank of the distributed optimizer check (see test_distributed.py).

Run as a script, once per rank::

    python distributed_worker.py RANK WORLD_SIZE STORE_PORT OUT.json

Every rank joins a gloo process group through the TCP store that the
launcher serves on 127.0.0.1:STORE_PORT. Then, for every configuration in
``optim_cases.CONFIGS``, it trains one small model for ``STEPS`` steps,
from the same initial weights and on the same batches:

* alone, on the whole batch (the reference trajectory);
* under DDP, each rank on its share of the batch;
* under FSDP2 (``fully_shard``, DTensor parameters), with the multi-tensor
  path and with the per-tensor reference of the optimizer, once with the
  whole model sharded and once ("mixed") with only its first layer
  sharded, so that one parameter group holds DTensors and plain tensors;
* under FSDP2 with the reduction of norms across shards taken out (a
  negative control, which the check must catch).

Rank 0 writes to OUT.json, for each configuration and way, the largest
absolute difference from the reference over all parameters and steps and
the number of all-reduces in the last optimizer step; the shapes of every
rank's shards; and the comparison that the shipped example
``examples/ddp_train.py`` makes for each of its optimizers.
"""

import datetime
import importlib.util
import json
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

from optim_cases import CONFIGS

STEPS = 10
BATCH = 8
DTYPE = torch.float64
# Linear(3, 5) has a first dimension that two ranks cannot share evenly;
# Linear(5, 1) has a first dimension smaller than the world size, so one
# rank holds empty shards of its weight and bias.
SIZES = (3, 5, 1)
MODES = ("ddp", "fsdp2", "fsdp2-reference", "fsdp2-mixed",
         "fsdp2-mixed-reference")


def make_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(SIZES[0], SIZES[1]), torch.nn.Tanh(),
        torch.nn.Linear(SIZES[1], SIZES[2])).to(DTYPE)


def batch(step):
    gen = torch.Generator().manual_seed(step)
    x = torch.randn(BATCH, SIZES[0], generator=gen, dtype=DTYPE)
    y = torch.sin(x.sum(dim=1, keepdim=True))
    return x, y


def full_params(model):
    """Copies of the parameters, gathered whole where they are sharded."""
    out = []
    for p in model.parameters():
        p = p.detach()
        if hasattr(p, "full_tensor"):
            p = p.full_tensor()
        out.append(p.clone())
    return out


def local_shapes(world):
    """Each rank's list of the shapes of its shards under FSDP2."""
    from torch.distributed.fsdp import fully_shard
    model = make_model()
    fully_shard(model)
    mine = [list(p.to_local().shape) for p in model.parameters()]
    shapes = [None] * world
    dist.all_gather_object(shapes, mine)
    return shapes


def train(cls, kwargs, mode, rank, world):
    model = make_model()
    if mode == "single":
        rows = slice(None)
    else:
        share = BATCH // world
        rows = slice(rank * share, (rank + 1) * share)
    if mode == "ddp":
        model = torch.nn.parallel.DistributedDataParallel(model)
    elif mode.startswith("fsdp2"):
        from torch.distributed.fsdp import fully_shard
        # "mixed": only the first layer is sharded, so that one parameter
        # group holds DTensors and plain tensors.
        fully_shard(model[0] if "mixed" in mode else model)
        kwargs = dict(kwargs, foreach=not mode.endswith("reference"))
    opt = cls(model.parameters(), **kwargs)
    trajectory, reductions = [], 0
    for step in range(STEPS):
        x, y = batch(step)
        opt.zero_grad()
        loss = ((model(x[rows]) - y[rows]) ** 2).mean()
        loss.backward()
        if "mixed" in mode:
            average_plain_gradients(model, world)
        if step < STEPS - 1 or mode == "single":
            opt.step()
        else:
            reductions = count_all_reduces(opt.step)
        trajectory.append(full_params(model))
    return trajectory, reductions


def average_plain_gradients(model, world):
    """What DDP would do for the parameters that FSDP2 does not own."""
    for p in model.parameters():
        if p.grad is not None and not hasattr(p.grad, "full_tensor"):
            dist.all_reduce(p.grad)
            p.grad.div_(world)


def count_all_reduces(fn):
    """Run ``fn()``; return how many all-reduces it started."""
    with torch.profiler.profile(
            activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    return sum(e.name == "c10d::allreduce_" for e in prof.events())


def deviation(a, b):
    return max(float((p - q).abs().max()) if p.numel() else 0.0
               for ps, qs in zip(a, b) for p, q in zip(ps, qs))


def shipped_example():
    """The module ``examples/ddp_train.py`` of the repository."""
    path = Path(__file__).resolve().parents[1] / "examples" / "ddp_train.py"
    spec = importlib.util.spec_from_file_location("ddp_train", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_example():
    """The example's own comparison, for each of its optimizers."""
    example, cpu = shipped_example(), torch.device("cpu")
    return {f"{name} {'fsdp2' if fsdp else 'ddp'}":
            example.compare(name, fsdp, STEPS, cpu)[1]
            for name in sorted(example.OPTIMIZERS) for fsdp in (False, True)}


def shard_norms(norms):
    """A wrong ``full_norms``: each rank keeps the norms of its shards."""
    return [n.to_local() if hasattr(n, "to_local") else n for n in norms]


def without_reduction(cls, kwargs, rank, world):
    """The FSDP2 trajectory when no norm is reduced across shards."""
    import magcore.optim.power as power
    right, power.full_norms = power.full_norms, shard_norms
    try:
        return train(cls, kwargs, "fsdp2", rank, world)
    finally:
        power.full_norms = right


def main(rank, world, port, out):
    store = dist.TCPStore("127.0.0.1", port, world, is_master=False)
    # A rank whose peer died fails after two minutes instead of waiting.
    dist.init_process_group("gloo", store=store, rank=rank,
                            world_size=world,
                            timeout=datetime.timedelta(seconds=120))
    start = time.perf_counter()
    results, reductions = {}, {}
    for name, (cls, kwargs) in sorted(CONFIGS.items()):
        reference, _ = train(cls, kwargs, "single", rank, world)
        results[name], reductions[name] = {}, {}
        for mode in MODES:
            trajectory, count = train(cls, kwargs, mode, rank, world)
            results[name][mode] = deviation(trajectory, reference)
            reductions[name][mode] = count
        # The negative control: the check must see a missing reduction.
        trajectory, _ = without_reduction(cls, kwargs, rank, world)
        results[name]["without-reduction"] = deviation(trajectory,
                                                       reference)
    shapes = local_shapes(world)
    example = run_example()
    if rank == 0:
        with open(out, "w") as f:
            json.dump(dict(world_size=world, steps=STEPS,
                           torch=torch.__version__,
                           seconds=time.perf_counter() - start,
                           deviations=results,
                           all_reduces_in_last_step=reductions,
                           local_shapes=shapes, example=example),
                      f, indent=1)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
