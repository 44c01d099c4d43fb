"""The course's autograder: grade a submission of an assignment without ever importing student code in the judge.

The modules, in the order data flows through a grading run (`grader.runner.grade`):

    submission (folder or zip)
        |
    intake        stage the files the manifest names: missing, refused, syntax errors, a content digest
        |
    manifest      assignments/<name>/assignment.toml, strictly parsed: parts, points, files, forbidden calls
        |         and why ([why]), loop limits, building blocks, limits, targets per data set
    runner        the judge: loads the checks (trusted, from the kit), runs each in order (building blocks
        |         before the composites that use them), scores them; `Run` is one run's state
        |   staticscan   reads the submitted source: forbidden names, loops (helpers followed)
        |
    sandbox  ---- wire ---->  worker + guard     student code runs only here, in a separate process
        |    <--- wire -----                     (bubblewrap where available); the guard reports forbidden
        |                                        calls and autograd as structured records
    checks        `check`/`variant` and `Ctx`, what a check uses: seeded inputs, calls into the sandbox,
        |         judgements; judging: the comparisons and their feedback (expect_tensor, ...)
    results       CheckResult, PartResult, GradeResult
        |
    report        the terminal table, Gradescope's results.json, JUnit XML, Markdown

Around it: `rules` (the rules each graded module's docstring states, rendered from the manifest), `release`
(the student kit and the autograder bundle), `submit` (the zip a student uploads), `cli` (the `grader`
command).
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
