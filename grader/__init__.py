"""The course's autograder: grade a submission of an assignment without ever importing student code in the judge.

Its rooms, each importing only the rooms below it (`lint-imports` checks it; docs/architecture.md):

    cli          the `grader` command: the only code that parses flags
    classroom    a whole class: `grader batch`, the gradebook for Canvas, the class report, similarity
    kit          what leaves the course: the student kit and the autograder bundle (`release`), the zip (`submit`)
    notebooks    a submission's notebooks run in a sandboxed kernel, their answers, the report made from them
    reports      renderings of a result: terminal table, results.json, JUnit XML, Markdown, Classroom annotations
    judge        checks (`check`, `Ctx`), judging (comparisons and feedback), the static scan, the runner, results
    sandbox      where student code runs: process, isolation (bubblewrap, `user`), host, the wire, the worker, guard
    course       the manifest, the rules it states, the intake of a submission
    errors       GraderError: a problem the user must fix

A grading run (`grader.judge.runner.grade`), as data flows:

    submission --intake--> staged tree --runner--> each check (judge process) --wire--> worker + guard
        (sandbox: the only process that imports student code) --wire--> replies --judging--> CheckResult
        --> GradeResult --reports--> results.json, junit.xml, summary.md (--notebooks--> report.html)

Check files import `grader.checks` and `grader.judging` (and `grader.wire` for `Handle`): those names stay,
whatever room their code lives in.
"""

from importlib import metadata as _metadata


def _version() -> str:
    """The kit's version, written in one place: pyproject.toml (installed, or beside this package)."""
    try:
        return _metadata.version("dlcv-course-kit")
    except _metadata.PackageNotFoundError:
        pass
    import tomllib
    from pathlib import Path

    try:
        return tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())["project"][
            "version"
        ]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "0+unknown"


__version__ = _version()
