"""The `grader` command: a thin layer over the library (grader.judge.runner, grader.kit.release, grader.kit.submit)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from grader.errors import GraderError


def _with_parts(names: list[str], parts: list[str], kit: Path) -> list[str]:
    """The assignments among `names` that have every part of `parts`; an error naming each assignment's parts when
    none has them all."""
    from grader.course import manifest as manifests

    have = {n: [p.name for p in manifests.load(n, kit, check_names=False).parts] for n in names}
    chosen = [n for n in names if set(parts) <= set(have[n])]
    if not chosen:
        listed = "; ".join(f"{n}: {', '.join(ps)}" for n, ps in have.items())
        which = "these parts" if len(parts) > 1 else "this part"
        raise GraderError(f"--part {' '.join(parts)}: no assignment here has {which} ({listed})")
    return chosen


def _grade(args: argparse.Namespace) -> int:
    from grader.course import manifest as manifests
    from grader.judge.opening import open_ahead
    from grader.reports import formats as report

    kit = Path(args.course).resolve() if args.course else manifests.course_root()
    path = Path(args.path)
    if args.assignment:
        names = [args.assignment]
    else:
        names = manifests.assignments_in(path, kit) if path.is_dir() else []
        if not names:
            available = manifests.available(kit)
            if len(available) == 1:
                names = available
            else:
                raise GraderError(
                    f"{path}: cannot tell which assignment this is; pass --assignment (one of {', '.join(available)})"
                )
    if args.part and not args.assignment:  # `--part knn` alone: the assignment(s) that have the part
        names = _with_parts(names, args.part, kit)
    out_root = Path(args.out or "grader-results")
    color = sys.stdout.isatty() and not args.no_color
    if args.deadline is not None and not args.deadline > 0:
        raise GraderError(f"--deadline: expected a positive number of seconds, found {args.deadline:g}")
    ends = time.monotonic() + args.deadline if args.deadline is not None else None
    failed_floor = False
    totals = []
    options = {
        "kit": kit,
        "device": args.device,
        "hidden": args.hidden,
        "dataset": args.dataset,
        "call_timeout": args.timeout,
        "isolation": args.sandbox,
        "allow_weak_sandbox": args.allow_weak_sandbox,
    }
    # the first worker starts before the judge imports PyTorch (the two imports run side by side), each later one
    # while the assignment before it is graded
    first = open_ahead(path, names[0], **options)
    try:
        from grader.judge.runner import Ahead

        ahead = Ahead(path, names, first=first, **options)
    except BaseException:  # an interrupt while PyTorch loads: the opened grading ends here, not at exit
        if first is not None:
            first.close()
        raise
    with ahead:
        for name in names:

            def progress(r, _name=name):
                if args.verbose:
                    print(
                        f"  {r.number:>5} {r.id:<50} {r.status:<6} {r.seconds:7.2f} s"
                        f" (student calls {r.call_seconds:.2f} s)",
                        file=sys.stderr,
                        flush=True,
                    )

            share = None
            if ends is not None:  # grading first (its share when a report follows), then the report in what is left
                left = ends - time.monotonic() - WRITE_MARGIN
                share = left * (GRADING_SHARE if (args.report or args.pdf) else 1.0)
                if share < 1:
                    report_share = (
                        f", and the notebook report {1 - GRADING_SHARE:.0%} of the rest" if args.report else ""
                    )
                    raise GraderError(
                        f"--deadline {args.deadline:g}: too short to grade {name}: {WRITE_MARGIN:g} s are kept for "
                        f"writing the results{report_share}"
                    )
            result = ahead.grade(
                name,
                parts=args.part or None,
                on_result=progress,
                time_budget=share,
                seed_secret=args.seed_secret,
                workers=None if args.workers == "auto" else int(args.workers),
            )
            out = out_root if (args.out and len(names) == 1) else out_root / name  # one place for each assignment
            if args.report or args.pdf:  # the notebooks, run in the sandbox, and the report for manual grading
                from grader.notebooks.report import attach

                if ends is not None:  # the grade is on disk before the notebooks run: a platform's kill cannot lose it
                    _write(report, result, out)

                report_lines = attach(
                    result,
                    path,
                    name,
                    kit=kit,
                    out=out,
                    pdf=args.pdf,
                    dataset=args.dataset,
                    isolation=args.sandbox,
                    allow_weak_sandbox=args.allow_weak_sandbox,
                    budget=None if ends is None else ends - time.monotonic() - WRITE_MARGIN,
                    kernels_ahead=False if args.workers == "1" else None,
                )
            paths = _write(report, result, out)
            if args.format == "json":
                print(json.dumps(report.gradescope(result), indent=2, default=str))
            else:
                print(report.table(result, color=color))
                print(sandbox_line(result.sandbox.get("isolation", {})))
                print(f"Reports: {paths['json']}, {paths['junit']}, {paths['markdown']}")
                if args.report or args.pdf:
                    print("\n".join(report_lines))
            totals.append((name, result.score, result.max_score))
            if args.fail_under is not None and result.score < args.fail_under * result.max_score / 100:
                failed_floor = True
    if len(totals) > 1:
        print("\n" + "\n".join(f"{n:<16} {s:7.2f} / {m:g}" for n, s, m in totals))
    if not args.hidden and path.is_dir():  # a student's working tree: what grading cannot see, said once
        _remind(path, names, kit, report=bool(args.report or args.pdf))
    return 1 if failed_floor else 0


def _remind(path: Path, names: list[str], kit: Path, report: bool = False) -> None:
    """Before submitting: notebooks never run and inline questions not answered (graded by hand, not above)."""
    from grader.course import manifest as manifests
    from grader.kit.submit import notebook_reminders

    lines = []
    for name in names:
        m = manifests.load(name, kit)
        lines += notebook_reminders(path, m, kit)
    if lines:
        print("\nBefore you submit (graded by hand, not in the score above):", file=sys.stderr)
        if report:  # the report's runs leave the student's files as they were: say so, or this reads as a failure
            print("  (the report ran copies of your notebooks; your own files are unchanged)", file=sys.stderr)
        print("\n".join(f"  - {t}" for t in lines), file=sys.stderr)


GRADING_SHARE = 0.6  # of a --deadline, what grading may use when a notebook report follows (the report gets the rest)
WRITE_MARGIN = 10.0  # seconds of a --deadline kept for rendering and writing the results


def _write(report, result, out: Path) -> dict[str, Path]:
    try:
        return report.write_all(result, out)
    except OSError as e:
        raise GraderError(f"--out {out}: cannot write the reports there ({type(e).__name__}: {e})") from None


def sandbox_line(isolation: dict) -> str:
    """One line on how student code was isolated; a weak run says what would make it strong."""
    mode = isolation.get("mode", "unknown")
    if mode in ("bwrap", "user"):
        return f"Sandbox: {isolation.get('detail', mode)}"
    return (
        f"Sandbox: none, your code ran as your own user ({isolation.get('weaker_because', '')}). Fine for "
        "checking your own work; the course's autograder isolates it."
    )


def _release(args: argparse.Namespace) -> int:
    from grader.course import manifest as manifests
    from grader.kit.release import release

    kit = Path(args.course).resolve() if args.course else manifests.course_root()
    paths = release(kit, Path(args.out), assignments=args.assignment or None, force=args.force)
    for k, v in paths.items():
        print(f"{k}: {v}")
    return 0


def _new(args: argparse.Namespace) -> int:
    from grader.course import manifest as manifests
    from grader.kit.new import new_assignment

    kit = Path(args.course).resolve() if args.course else manifests.course_root()
    for path in new_assignment(kit, args.name, args.title):
        print(f"wrote {path.relative_to(kit)}")
    print(
        f"Next: `make test-assignment A={args.name}` (the reference scores 100, the kit's stub 0), then "
        "docs/writing-checks.md's checklist."
    )
    return 0


def _submit(args: argparse.Namespace) -> int:
    from grader.course import manifest as manifests
    from grader.kit.submit import build_submission

    kit = Path(args.course).resolve() if args.course else manifests.course_root()
    out = build_submission(
        Path(args.path),
        args.assignment,
        kit=kit,
        out=Path(args.out) if args.out else None,
        allow_incomplete=args.allow_incomplete,
    )
    print(f"Wrote {out}. Upload this file.")
    return 0


def _batch(args: argparse.Namespace) -> int:
    from grader.classroom.batch import cli

    return cli(args)


def _list(args: argparse.Namespace) -> int:
    from grader.course import manifest as manifests
    from grader.judge.loading import load_checks

    kit = Path(args.course).resolve() if args.course else manifests.course_root()
    if args.docstring and not args.rules:
        raise GraderError("--docstring: only with --rules (grader list --rules --docstring)")
    if args.rules:
        return _rules(args, kit)
    for name in [args.assignment] if args.assignment else manifests.available(kit):
        m = manifests.load(name, kit)
        print(f"{m.name}: {m.title} ({m.points:g} points)")
        specs = load_checks(m, hidden=args.hidden)
        for p in m.parts:
            print(f"  {p.name} ({p.points:g} points, {p.file})")
            for f, pts in p.functions.items():
                ids = [s.id + (" [hidden]" if s.hidden else "") for s in specs if s.function == f]
                print(f"    {f:<34} {pts:5g}  " + ", ".join(ids))
    return 0


def _rules(args: argparse.Namespace, kit: Path) -> int:
    from grader.course import manifest as manifests
    from grader.course.rules import rules_block, rules_table

    ms = [manifests.load(name, kit) for name in ([args.assignment] if args.assignment else manifests.available(kit))]
    if not args.docstring:
        print("\n\n".join(rules_table(m) + _source_only(m) for m in ms))
        return 0
    blocks = []
    for m in ms:
        for p in m.parts:
            block = rules_block(m, p)
            blocks.append(
                f"# {p.file} ({m.name}, part {p.name}): paste into the module docstring\n"
                + (block or "# (no rules: nothing to paste)")
            )
    print("\n\n".join(blocks))
    return 0


def _source_only(m) -> str:
    """A line naming the forbidden names no run-time check can see (grader.sandbox.lowering.watched_at_run_time):
    the static scan of the source is their only rule."""
    from grader.sandbox.lowering import watched_at_run_time

    names = sorted({n for p in m.parts for listed in p.forbidden.values() for n in listed})
    unseen = [n for n in names if not watched_at_run_time(n)]
    if not unseen:
        return ""
    return f"\n  found by reading the source only (no check can see them run): {', '.join(unseen)}"


# the library's parameters (GraderError.option) and the flags that set them
FLAGS = {
    "device": "--device",
    "hidden": "--hidden",
    "call_timeout": "--timeout",
    "parts": "--part",
    "time_budget": "--deadline",
    "isolation": "--sandbox",
    "seed_secret": "--seed-secret",
}


def shown(e: GraderError) -> str:
    """The error as a user of the command reads it: the flag, not the library's parameter."""
    return f"{FLAGS[e.option]}: {e.message}" if e.option in FLAGS else str(e)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="grader", description="Grade, release and submit course assignments.")
    ap.add_argument("--course", help="the course root (the folder with assignments/); default: found from here")
    sub = ap.add_subparsers(dest="command", required=True)

    g = sub.add_parser("grade", help="grade a submission folder or zip")
    g.add_argument("path", nargs="?", default=".", help="a submission folder or .zip (default: this folder)")
    g.add_argument("--assignment", "-a", help="assignment name (default: every assignment the folder holds)")
    g.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    g.add_argument("--hidden", action="store_true", help="include the hidden checks (autograder bundle only)")
    g.add_argument("--part", action="append", help="grade only this part (repeatable)")
    g.add_argument(
        "--dataset",
        choices=["auto", "cifar10", "digits"],
        default=None,
        help="data set for accuracy checks (default: $DLCV_DATASET, else CIFAR-10 if present, else digits)",
    )
    g.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="time limit per call into student code (default: the manifest's call_timeout)",
    )
    g.add_argument(
        "--sandbox",
        choices=["auto", "bwrap", "user", "none"],
        default="auto",
        help="how student code is isolated (default: the strongest available; see README)",
    )
    g.add_argument(
        "--allow-weak-sandbox", action="store_true", help="grade with --hidden even where no OS sandbox is available"
    )
    g.add_argument(
        "--workers",
        choices=["auto", "1", "2"],
        default="auto",
        help="sandboxed workers grading at once: with 2, the checks that train a model run on a second worker "
        "beside the first (bubblewrap only); auto: 2 where the machine has two CPUs and the memory for it; with 1, "
        "--report also starts one notebook kernel at a time",
    )
    g.add_argument(
        "--deadline",
        type=float,
        metavar="SECONDS",
        help="finish grading and the report within SECONDS (a platform's clock, e.g. Gradescope's 10 minutes): "
        "checks still waiting when grading's share runs out fail with a message, notebooks get what is left, and "
        "results.json is written as soon as grading ends",
    )
    g.add_argument(
        "--seed-secret",
        metavar="SECRET",
        help="replay a run: derive the checks' seeds from this secret (results.json's extra_data.seed_secret) "
        "instead of a new one",
    )
    g.add_argument(
        "--out",
        help="folder for results.json, junit.xml, summary.md (default: grader-results/<assignment>/, whatever is "
        "graded; with --out and one assignment, that folder itself)",
    )
    g.add_argument(
        "--report",
        action="store_true",
        help="also run the submitted notebooks in the sandbox and write report.html, report.ipynb and "
        "answers.json (the answers to grade by hand) into --out",
    )
    g.add_argument("--pdf", action="store_true", help="with the report, print report.pdf (needs Chromium)")
    g.add_argument("--format", choices=["table", "json"], default="table")
    g.add_argument(
        "--fail-under", type=float, metavar="PERCENT", help="exit with status 1 when the score is below this percentage"
    )
    g.add_argument("--no-color", action="store_true")
    g.add_argument("--verbose", "-v", action="store_true", help="print each check as it finishes")
    g.set_defaults(func=_grade)

    r = sub.add_parser("release", help="write the student kit and the autograder bundle")
    r.add_argument("--out", required=True, help="folder to write student/ and autograder/ into")
    r.add_argument("--assignment", "-a", action="append", help="only this assignment (repeatable)")
    r.add_argument("--force", action="store_true", help="replace an earlier release in --out")
    r.set_defaults(func=_release)

    n = sub.add_parser(
        "new", help="write the skeleton of a new assignment (package, manifest, checks, notebook, tests) that works"
    )
    n.add_argument("name", metavar="NAME", help="the assignment's package name, for example a4_rnn")
    n.add_argument("--title", help='its title (default: "NAME: a new assignment")')
    n.set_defaults(func=_new)

    s = sub.add_parser("submit", help="build the zip to upload")
    s.add_argument("path", nargs="?", default=".", help="your assignment folder (default: this folder)")
    s.add_argument("--assignment", "-a", required=True)
    s.add_argument("--out", help="zip path (default: <assignment>_submission.zip in this folder)")
    s.add_argument(
        "--allow-incomplete", action="store_true", help="build the zip even if functions are not implemented yet"
    )
    s.set_defaults(func=_submit)

    b = sub.add_parser("batch", help="grade a whole class into a gradebook (resumable; local or on a Dask cluster)")
    b.add_argument(
        "input",
        help="a folder (or .zip) of submissions: one subfolder or .zip per student, a Gradescope "
        "export, or cloned GitHub Classroom repositories",
    )
    b.add_argument("--assignment", "-a", required=True)
    b.add_argument("--out", required=True, help="folder for the gradebook, the class report and each student's reports")
    b.add_argument("--hidden", action="store_true", help="include the hidden checks")
    b.add_argument("--report", action="store_true", help="also write each student's notebook report")
    b.add_argument("--jobs", "-j", type=int, help="submissions graded at a time on this machine (default: the cores)")
    b.add_argument("--scheduler", metavar="ADDRESS", help="grade on a Dask cluster instead (tcp://HOST:PORT)")
    b.add_argument("--force", action="store_true", help="regrade even what is done and unchanged")
    b.add_argument("--retry-errors", action="store_true", help="regrade submissions that ended in an error or timeout")
    b.add_argument("--only", action="append", metavar="STUDENT", help="grade only this student (repeatable)")
    b.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    b.add_argument("--dataset", choices=["auto", "cifar10", "digits"], default=None)
    b.add_argument("--sandbox", choices=["auto", "bwrap", "user", "none"], default="auto")
    b.add_argument("--allow-weak-sandbox", action="store_true")
    b.add_argument(
        "--limit",
        type=float,
        metavar="SECONDS",
        help="wall-clock limit per submission (default: the manifest's grading_timeout + 5 min)",
    )
    b.add_argument("--no-similarity", action="store_true", help="skip similarity.csv")
    b.add_argument(
        "--canvas-id",
        metavar="ID",
        help="the assignment's id in Canvas (the number ending its address, .../assignments/ID), so that Canvas's "
        "grade import matches canvas.csv to it (default: the manifest's canvas_assignment_id)",
    )
    b.set_defaults(func=_batch)

    ls = sub.add_parser("list", help="list assignments, parts, points and checks")
    ls.add_argument("--assignment", "-a")
    ls.add_argument("--hidden", action="store_true")
    ls.add_argument("--rules", action="store_true", help="what each function may not use and why, and its loop limits")
    ls.add_argument(
        "--docstring", action="store_true", help="with --rules: per graded file, the block its module docstring carries"
    )
    ls.set_defaults(func=_list)
    return ap


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # a terminal that cannot show a character gets "?", not a crash
        try:
            stream.reconfigure(errors="replace")
        except (AttributeError, ValueError):
            pass
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except GraderError as e:
        print(f"grader {args.command}: error: {shown(e)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `grader list | head`: the reader has what it wanted (Python's documented recipe)
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
