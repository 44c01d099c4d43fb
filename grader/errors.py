"""The grader's one exception for problems a user must fix: a bad option, a malformed manifest, an unreadable
submission. Errors of student code are results, not exceptions (grader.judge.results)."""


class GraderError(Exception):
    """A problem the user must fix (bad option, malformed manifest, unreadable submission).
    Its message names the file or option, what was expected and what was found."""
