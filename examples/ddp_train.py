"""Train a small model with a magcore optimizer on several processes.

Run on two CPU processes (gloo), or one process per GPU (nccl)::

    torchrun --standalone --nproc_per_node=2 examples/ddp_train.py
    torchrun --standalone --nproc_per_node=2 examples/ddp_train.py --fsdp

With ``--fsdp`` the model is sharded with FSDP2 (``fully_shard``), else it
is replicated with DDP. Each rank trains on its share of every batch.
Rank 0 then trains the same model alone on the whole batches and prints
how far the two runs' parameters are apart.
"""

import argparse
import os
import time

import torch
import torch.distributed as dist

import magcore

OPTIMIZERS = {
    "sgd": lambda params: magcore.SGD(params, lr=0.05, momentum=0.9),
    "adam": lambda params: magcore.Adam(params, lr=0.01),
    "nsgd": lambda params: magcore.NSGD(params, lr=0.05, momentum=0.9),
    "normpower": lambda params: magcore.NormPowerSGD(params, lr=0.05,
                                                     p=0.5),
    "signum": lambda params: magcore.SignSGD(params, lr=0.01,
                                             momentum=0.9),
    "lion": lambda params: magcore.Lion(params, lr=0.01),
    "pq-tensor": lambda params: magcore.PQSGD(
        params, lr=0.05, p=0.5, q=0.2, norm_scope="tensor"),
}


def make_model(device):
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 1),
    ).to(device=device, dtype=torch.float64)


def whole_batch(step, device, size=8):
    """The same batch on every rank: seeded by the step."""
    gen = torch.Generator().manual_seed(step)
    x = torch.randn(size, 3, generator=gen, dtype=torch.float64)
    return x.to(device), torch.sin(x.sum(dim=1, keepdim=True)).to(device)


def train(model, optimizer, steps, rank, world, device):
    for step in range(steps):
        x, y = whole_batch(step, device)
        share = len(x) // world
        rows = slice(rank * share, (rank + 1) * share)
        optimizer.zero_grad()
        loss = ((model(x[rows]) - y[rows]) ** 2).mean()
        loss.backward()
        optimizer.step()
    return loss.detach()


def whole_parameters(model):
    """The parameters, each gathered whole where it is sharded."""
    params = [p.detach() for p in model.parameters()]
    return [p.full_tensor() if hasattr(p, "full_tensor") else p
            for p in params]


def compare(name, fsdp, steps, device):
    """Train under DDP (or FSDP2 with ``fsdp``) on every rank, then alone
    on rank 0. Returns the last loss on the whole batch and, on rank 0,
    the largest difference between the two runs' parameters (else None).
    """
    rank, world = dist.get_rank(), dist.get_world_size()
    model = make_model(device)
    if fsdp:
        from torch.distributed.fsdp import fully_shard
        fully_shard(model)
    else:
        model = torch.nn.parallel.DistributedDataParallel(model)
    loss = train(model, OPTIMIZERS[name](model.parameters()), steps,
                 rank, world, device)
    dist.all_reduce(loss)
    params = whole_parameters(model)
    if rank != 0:
        return float(loss) / world, None

    alone = make_model(device)
    train(alone, OPTIMIZERS[name](alone.parameters()), steps, 0, 1, device)
    gap = max(float((a - b).abs().max())
              for a, b in zip(params, whole_parameters(alone)))
    return float(loss) / world, gap


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--optimizer", choices=sorted(OPTIMIZERS),
                        default="nsgd")
    parser.add_argument("--fsdp", action="store_true",
                        help="shard with FSDP2 instead of DDP")
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()

    start = time.perf_counter()
    cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo")
    device = torch.device("cpu")
    if cuda:
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    loss, gap = compare(args.optimizer, args.fsdp, args.steps, device)
    if dist.get_rank() == 0:
        print(f"{args.optimizer} under {'FSDP2' if args.fsdp else 'DDP'} "
              f"on {dist.get_world_size()} processes: last loss "
              f"{loss:.6f}, largest difference from one process {gap:.1e}")
        print(f"seed 0, device {device.type}, torch {torch.__version__}, "
              f"{time.perf_counter() - start:.1f} s")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
