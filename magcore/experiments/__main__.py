"""Command line: ``python -m magcore.experiments {list,run} ...``."""

import argparse
import sys

from . import EXPERIMENTS, SCALES, get


def main(argv=None):
    """Parse ``argv`` and run; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m magcore.experiments",
        description="Run the book's named experiments.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the experiments")
    run = sub.add_parser("run", help="run one experiment")
    run.add_argument("name", help="the experiment's name")
    run.add_argument("--scale", choices=SCALES, default="cpu",
                     help="problem sizes and budgets (default: cpu)")
    run.add_argument("--store", default="results",
                     help="directory of the result store; runs found "
                          "there are not recomputed (default: results)")
    run.add_argument("--device", default=None,
                     help="torch device (default: cuda if available)")
    run.add_argument("--no-progress", action="store_true",
                     help="no progress bar")
    args = parser.parse_args(argv)
    if args.command == "list":
        for name in sorted(EXPERIMENTS):
            print(f"{name}: {EXPERIMENTS[name].summary}")
        return 0
    try:
        experiment = get(args.name)
    except ValueError as err:
        parser.error(str(err))
    from ..sweeps.store import ResultStore
    report = experiment.run(args.scale, ResultStore(args.store),
                            args.device, not args.no_progress)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
