"""The grader's one exception for problems a user must fix: a bad option, a malformed manifest, an unreadable
submission. Errors of student code are results, not exceptions (grader.judge.results)."""

from __future__ import annotations


class GraderError(Exception):
    """A problem the user must fix (bad option, malformed manifest, unreadable submission). Its message names the
    file or value, what was expected and what was found.

    `option`: the parameter the problem is about, by its Python name (`device`, `parts`, ...), where it is one;
    the library never names a command-line flag: grader.cli shows the flag it comes from."""

    def __init__(self, message: str, *, option: str | None = None) -> None:
        super().__init__(message)
        self.message, self.option = message, option

    def __str__(self) -> str:
        return f"{self.option}: {self.message}" if self.option else self.message
