"""Step time of magcore's optimizers against torch.optim and the roofline.

An optimizer step is memory-bound, so each magcore optimizer is timed
against the fastest torch.optim implementation of the same memory class,
in the same run, interleaved (one step of each case per round, medians
after warm-up), and against the roofline: the bytes a step must move per
parameter divided by the measured stream bandwidth of the machine.

    python benchmarks/optim_step.py             # CPU, one thread, 10M
    python benchmarks/optim_step.py --quick     # a quick look
    python benchmarks/optim_step.py --device cuda   # 100M and 1B params

The table is printed and written, with a description of the machine, to
``benchmarks/results/optim_step_<device>.json``. Without CUDA the GPU run
says so and exits cleanly.
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import magcore  # noqa: E402
from magcore.optim import fused  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
LR = 1e-7

# name: (bytes per fp32 parameter at the roofline, how the step moves
# them, baseline name, target ratio, ratio still accepted).
ROWS = {
    "Adam": (28, "read g, theta, m, v; write theta, m, v",
             "torch Adam (fused)", 1.0, 1.25),
    "SGD momentum": (20, "read g, theta, b; write theta, b",
                     "torch SGD momentum (foreach)", 1.0, 1.25),
    "SignSGD (Signum)": (20, "read g, theta, m; write theta, m",
                         "torch SGD momentum (foreach)", 1.5, 1.5),
    "Lion": (20, "read g, theta, m; write theta, m",
             "torch SGD momentum (foreach)", 1.5, 1.5),
    "NSGD momentum": (24, "pass 1 read g, m, write m; pass 2 read m, "
                      "theta, write theta", "torch SGD momentum (foreach)",
                      2.0, 2.0),
    "SignPowerSGD p=0.3": (20, "read g, theta, m; write theta, m",
                           "torch Adam (fused)", 2.0, 2.0),
    "SignPowerSGD p=0.5": (20, "read g, theta, m; write theta, m",
                           "torch Adam (fused)", 2.0, 2.0),
    "NormPowerSGD p=0.5": (24, "as NSGD", "torch SGD momentum (foreach)",
                           2.0, 2.0),
    "PQSGD p=q=0.7 Lion betas": (20, "read g, theta, m; write theta, m",
                                 "torch Adam (fused)", 2.0, 2.0),
}

BASELINE_BYTES = {"torch Adam (fused)": 28,
                  "torch SGD momentum (foreach)": 20,
                  "torch SGD momentum (fused)": 20}


class WithoutCompile:
    """An optimizer whose steps run with ``torch.compile`` switched off
    (the blockwise eager path), to show what compiling buys."""

    def __init__(self, opt):
        self.opt = opt

    def step(self):
        saved, fused.USE_COMPILE = fused.USE_COMPILE, False
        try:
            self.opt.step()
        finally:
            fused.USE_COMPILE = saved


# The same steps without compiling: name -> the row they shadow.
EAGER = {"SignSGD (Signum), no compile": "SignSGD (Signum)",
         "SignPowerSGD p=0.3, no compile": "SignPowerSGD p=0.3",
         "SignPowerSGD p=0.5, no compile": "SignPowerSGD p=0.5"}


def factories():
    """name -> function(params) building the optimizer of that case."""
    build = {
        "torch Adam (fused)": lambda ps: torch.optim.Adam(
            ps, lr=LR, fused=True),
        "torch SGD momentum (foreach)": lambda ps: torch.optim.SGD(
            ps, lr=LR, momentum=0.9, foreach=True),
        "torch SGD momentum (fused)": lambda ps: torch.optim.SGD(
            ps, lr=LR, momentum=0.9, fused=True),
        "Adam": lambda ps: magcore.Adam(ps, lr=LR),
        "SGD momentum": lambda ps: magcore.SGD(ps, lr=LR, momentum=0.9),
        "SignSGD (Signum)": lambda ps: magcore.SignSGD(
            ps, lr=LR, momentum=0.9),
        "Lion": lambda ps: magcore.Lion(ps, lr=LR),
        "NSGD momentum": lambda ps: magcore.NSGD(ps, lr=LR, momentum=0.9),
        "SignPowerSGD p=0.3": lambda ps: magcore.SignPowerSGD(
            ps, lr=LR, p=0.3, momentum=0.9),
        "SignPowerSGD p=0.5": lambda ps: magcore.SignPowerSGD(
            ps, lr=LR, p=0.5, momentum=0.9),
        "NormPowerSGD p=0.5": lambda ps: magcore.NormPowerSGD(
            ps, lr=LR, p=0.5, momentum=0.9),
        "PQSGD p=q=0.7 Lion betas": lambda ps: magcore.PQSGD(
            ps, lr=LR, p=0.7, betas=(0.9, 0.99)),
    }
    for name, row in EAGER.items():
        build[name] = (lambda make: lambda ps: WithoutCompile(make(ps)))(
            build[row])
    return build


def sizes_of(numel):
    """A few tensors, two large, one medium and two small, summing to
    about ``numel`` entries."""
    fractions = (0.4, 0.4, 0.15, 0.0496, 0.0004)
    sizes = [max(1, int(numel * f)) for f in fractions]
    sizes[0] += numel - sum(sizes)
    return sizes


CLOCK = {"wall": time.perf_counter, "process": time.process_time}
_clock = time.perf_counter


def clock(device):
    """The clock, read after the device has finished its queued work.

    On a GPU it is always ``perf_counter`` after ``synchronize``. On the
    CPU it can be the process's CPU time, which a machine shared with
    other jobs inflates less than the wall clock (the two agree on an
    idle machine for a one-thread, memory-bound step).
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return time.perf_counter()
    return _clock()


def stream_bandwidth(numel, device, repeats):
    """Bytes per second of a tensor copy (8 bytes per float32 entry), an
    in-place add (12 bytes) and an in-place addcmul (16 bytes), medians
    over ``repeats``; the roofline uses the fastest of the three."""
    a = torch.randn(numel, device=device)
    b = torch.randn(numel, device=device)
    c = torch.randn(numel, device=device)
    out = torch.empty_like(a)
    kernels = {"copy": (lambda: out.copy_(a), 8),
               "add_": (lambda: a.add_(b, alpha=1e-9), 12),
               "addcmul_": (lambda: a.addcmul_(b, c, value=1e-9), 16)}
    result = {}
    for name, (kernel, nbytes) in kernels.items():
        kernel()
        times = []
        for _ in range(repeats):
            t0 = clock(device)
            kernel()
            times.append(clock(device) - t0)
        result[name] = nbytes * numel / statistics.median(times)
    return result


def time_steps(numel, device, names, warmup, repeats):
    """Median step time of every case, interleaved round by round.

    All cases share one set of parameters and gradients; each optimizer
    keeps its own state. Returns (medians, first step wall times).
    """
    gen = torch.Generator(device=device).manual_seed(0)
    params = []
    for size in sizes_of(numel):
        param = torch.randn(size, device=device, generator=gen)
        param.grad = torch.randn(size, device=device, generator=gen)
        params.append(torch.nn.Parameter(param))
        params[-1].grad = param.grad
    build = factories()
    opts = {name: build[name](params) for name in names}
    first, times = {}, {name: [] for name in names}
    for name in names:
        # wall time: compiling runs in other processes as well
        clock(device)
        t0 = time.perf_counter()
        opts[name].step()
        clock(device)
        first[name] = time.perf_counter() - t0
        for _ in range(warmup):
            opts[name].step()
    for r in range(repeats):
        # rotate the order so that no case always follows the same one
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            t0 = clock(device)
            opts[name].step()
            times[name].append(clock(device) - t0)
    del opts, params
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {n: statistics.median(t) for n, t in times.items()}, first


def machine(device):
    """A short description of where the numbers were measured."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = dict(cpu=cpu, logical_cpus=os.cpu_count(),
                system=platform.system(),
                python=platform.python_version(), torch=torch.__version__,
                threads=torch.get_num_threads(),
                cpu_capability=torch.backends.cpu.get_cpu_capability())
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def table(rows):
    head = (f"{'optimizer':<24} {'ms':>8} {'baseline':<29} {'ms':>8} "
            f"{'ratio':>6} {'target':>6} {'roofline':>8}")
    lines = [head, "-" * len(head)]
    for row in rows:
        lines.append(
            f"{row['name']:<24} {row['ms']:8.2f} {row['baseline']:<29} "
            f"{row['baseline_ms']:8.2f} {row['ratio']:6.2f} "
            f"{row['target']:6.2f} {row['roofline_fraction']:8.2f}")
    return "\n".join(lines)


def run(device, numel, warmup, repeats):
    """Measure one size; return its record (a dict)."""
    names = list(factories())
    bandwidth = stream_bandwidth(numel, device, repeats)
    best = max(bandwidth.values())
    medians, first = time_steps(numel, device, names, warmup, repeats)
    rows = []
    for name, (nbytes, moves, base, target, accepted) in ROWS.items():
        roof = nbytes * numel / best
        rows.append(dict(
            name=name, optimizer=name.split()[0], ms=1e3 * medians[name],
            baseline=base,
            baseline_ms=1e3 * medians[base],
            ratio=medians[name] / medians[base], target=target,
            accepted=accepted,
            met=medians[name] / medians[base] <= accepted,
            bytes_per_param=nbytes, moves=moves,
            roofline_ms=1e3 * roof,
            roofline_fraction=roof / medians[name],
            first_step_s=first[name]))
    baselines = [dict(name=b, ms=1e3 * medians[b],
                      roofline_fraction=BASELINE_BYTES[b] * numel / best
                      / medians[b], first_step_s=first[b])
                 for b in BASELINE_BYTES]
    eager = [dict(name=name, ms=1e3 * medians[name],
                  compiled_ms=1e3 * medians[row],
                  speedup_of_compiling=medians[name] / medians[row])
             for name, row in EAGER.items()]
    return dict(numel=numel, tensor_sizes=sizes_of(numel),
                bandwidth_GBps={k: v / 1e9 for k, v in bandwidth.items()},
                rows=rows, baselines=baselines, without_compile=eager)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--numel", type=float, nargs="+", default=None,
                        help="parameter counts (default: 1e7 on the CPU, "
                        "1e8 and 1e9 on a GPU)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=31)
    parser.add_argument("--quick", action="store_true",
                        help="a tenth of the size, few repeats")
    parser.add_argument("--clock", default=None, choices=list(CLOCK),
                        help="CPU clock (default: process CPU time with "
                        "one thread, else wall time); GPUs use wall time")
    parser.add_argument("--note", default="",
                        help="stored with the results (e.g. load)")
    parser.add_argument("--out", default=None,
                        help="JSON file (default: benchmarks/results/"
                        "optim_step_<device>.json; '-' for none)")
    args = parser.parse_args(argv)

    if args.device == "cuda" and not torch.cuda.is_available():
        print("CUDA is not available: nothing measured.")
        return None
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    global _clock
    if device.type == "cuda":
        args.clock = "wall"
    elif args.clock is None:
        args.clock = "process" if args.threads == 1 else "wall"
    _clock = CLOCK[args.clock]
    numels = args.numel or ([1e7] if device.type == "cpu" else [1e8, 1e9])
    if args.quick:
        numels = [n / 10 for n in numels]
        args.warmup, args.repeats = 2, 7
    numels = [int(n) for n in numels]

    start = time.perf_counter()
    record = dict(
        benchmark="optimizer step time",
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"),
        machine=machine(device), device=device.type, note=args.note,
        clock=args.clock,
        warmup=args.warmup, repeats=args.repeats,
        compile_used=bool(fused.USE_COMPILE),
        sizes=[run(device, n, args.warmup, args.repeats) for n in numels])
    for size in record["sizes"]:
        bw = ", ".join(f"{k} {v:.1f} GB/s"
                       for k, v in size["bandwidth_GBps"].items())
        print(f"\n{size['numel']:,} float32 parameters on {device.type} "
              f"({args.threads} thread(s)); stream bandwidth: {bw}")
        print(table(size["rows"]))
        worst = min(r["roofline_fraction"] for r in size["rows"])
        for row in size["without_compile"]:
            print(f"{row['name']:<32} {row['ms']:8.2f} ms, compiled "
                  f"{row['compiled_ms']:.2f} ms "
                  f"({row['speedup_of_compiling']:.1f}x)")
        missed = [r["name"] for r in size["rows"] if not r["met"]]
        print(f"lowest roofline fraction {worst:.2f}; ratio targets "
              f"missed: {', '.join(missed) or 'none'}")
    if args.out != "-":
        out = Path(args.out) if args.out else (
            RESULTS / f"optim_step_{device.type}.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(record, indent=1) + "\n")
        print(f"written: {out.name}")
    print(f"{record['date']}, torch {torch.__version__}, "
          f"{record['machine']['cpu']}, wall "
          f"{time.perf_counter() - start:.0f} s")
    return record


if __name__ == "__main__":
    main()
