"""Run the benchmarks: `python -m bench [--only NAME] [--repeat N]`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench import a1, a2, a3, a4, batch, gradescope, guard, kit, notebooks, sandbox
from bench.common import Row, render

SUITES = {
    "a1": a1.run,
    "a2": a2.run,
    "a3": a3.run,
    "a4": a4.run,
    "batch": batch.run,
    "gradescope": gradescope.run,
    "guard": guard.run,
    "kit": kit.run,
    "notebooks": notebooks.run,
    "sandbox": sandbox.run,
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    ap.add_argument("--only", choices=sorted(SUITES), action="append", help="run only this suite (repeatable)")
    ap.add_argument("--repeat", type=int, default=5, help="timed repetitions per measurement (median is kept)")
    ap.add_argument("--out", default="grader-results/bench.json")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: stable on shared machines, and what the sandbox uses)",
    )
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    rows: list[Row] = []
    for name in args.only or sorted(SUITES):
        print(f"running {name} ...", file=sys.stderr, flush=True)
        rows += SUITES[name](repeat=args.repeat)
    print(render(rows))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps([{**r.__dict__, "ratio": r.ratio} for r in rows], indent=2) + "\n")
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
