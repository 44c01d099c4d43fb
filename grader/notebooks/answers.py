"""The inline questions of a submission's notebooks and their answers, read from the files as submitted (no code
runs): the manifest's `[[questions]]` name them (grader.course.manifest validates them):

    [[questions]]
    id = "knn_cross_validation"          # letters, digits, _ and -; unique in the assignment
    notebook = "notebooks/knn.ipynb"     # one of the manifest's notebooks
    points = 2                           # for manual grading (never added to the autograder's score)
    tag = "question:knn_cross_validation"   # optional: the cell tag that finds the question's cell
                                            # (default "question:<id>")

The answer is what follows the line `*Your answer:*` in the tagged (Markdown) cell, and any Markdown cells
right after it up to the next heading or code cell.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.course.manifest import Manifest, Question

ANSWER_MARKER = "*Your answer:*"


def questions(m: Manifest) -> list[Question]:
    """The manifest's `[[questions]]` (validated when the manifest loads: grader.course.manifest)."""
    return list(m.questions)


# -- answers ------------------------------------------------------------------------------------------------------


@dataclass
class Answer:
    id: str
    notebook: str
    points: float
    prompt: str  # Markdown, from the course's own notebook when it has the question (else the student's)
    text: str  # the student's answer (Markdown), "" when none
    status: str  # answered | unanswered | missing
    message: str = ""  # why it is missing / what is odd
    cell: int | None = None  # index of the question's cell in the submitted notebook

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "notebook": self.notebook,
            "points": self.points,
            "prompt": self.prompt,
            "answer": self.text,
            "status": self.status,
            "message": self.message,
        }


def _tags(cell: Any) -> list[str]:
    tags = cell.get("metadata", {}).get("tags", []) if isinstance(cell, dict) else []
    return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []


def _find(nb: Any, tag: str) -> list[int]:
    return [i for i, c in enumerate(nb.cells) if tag in _tags(c)]


def _split(source: str) -> tuple[str, str | None]:
    """(prompt, answer) of a question cell's text; answer None when the cell has no answer marker."""
    lines = source.split("\n")
    for i, line in enumerate(lines):
        if line.strip().replace("_", "*") == ANSWER_MARKER:
            return "\n".join(lines[:i]).rstrip(), "\n".join(lines[i + 1 :]).strip()
    return source.rstrip(), None


_PLACEHOLDER = re.compile(
    r"^[\s*_]*(todo|your answer( here)?|write your answer here|fill (this )?in)?[\s*_.:]*$", re.IGNORECASE
)


def find_answers(
    qs: list[Question], submitted: dict[str, Any], kit: Path | None = None, problems: dict[str, str] | None = None
) -> list[Answer]:
    """Every question of the manifest, in manifest order, with the student's answer. `submitted`: notebook ->
    its NotebookNode (None when it is missing or unreadable, `problems[notebook]` saying why); `kit`: the course
    folder whose notebooks give the prompts."""
    problems = problems or {}
    kit_nbs: dict[str, Any] = {}
    out = []
    for q in qs:
        if q.notebook not in kit_nbs:
            kit_nbs[q.notebook] = _read_quietly(kit / q.notebook) if kit else None
        course = kit_nbs[q.notebook]
        prompt = ""
        if course is not None:
            found = _find(course, q.tag)
            if found:
                prompt = _split(course.cells[found[0]].source)[0]
        nb = submitted.get(q.notebook)
        if nb is None:
            why = problems.get(q.notebook) or f"{q.notebook} is missing from the submission"
            out.append(Answer(q.id, q.notebook, q.points, prompt or q.title, "", "missing", why))
            continue
        cells = _find(nb, q.tag)
        if not cells:
            out.append(
                Answer(
                    q.id,
                    q.notebook,
                    q.points,
                    prompt or q.title,
                    "",
                    "missing",
                    f"no cell of {q.notebook} carries the tag {q.tag!r} (was the question's cell "
                    "deleted, or its tags removed?)",
                )
            )
            continue
        i = cells[0]
        own_prompt, text = _split(nb.cells[i].source)
        message = "" if len(cells) == 1 else f"{len(cells)} cells carry the tag {q.tag!r}; the first is used"
        if text is None:  # the marker line was removed: the whole cell, less the course's prompt
            text = nb.cells[i].source
            if prompt and text.startswith(prompt):
                text = text[len(prompt) :]
            text = text.strip()
        more = []
        given = {c.source.strip() for c in course.cells} if course is not None else set()
        for c in nb.cells[i + 1 :]:  # an answer continued in Markdown cells the student added below
            if (
                c.cell_type != "markdown"
                or c.source.lstrip().startswith("#")
                or any(t.startswith("question:") for t in _tags(c))
                or ANSWER_MARKER in c.source
                or c.source.strip() in given
            ):
                break
            more.append(c.source.strip())
        text = "\n\n".join(t for t in [text, *more] if t.strip())
        status = "unanswered" if _PLACEHOLDER.match(text) else "answered"
        out.append(
            Answer(
                q.id,
                q.notebook,
                q.points,
                prompt or own_prompt or q.title,
                text if status == "answered" else "",
                status,
                message,
                i,
            )
        )
    return out


def _read_quietly(path: Path) -> Any:
    import nbformat

    try:
        return nbformat.read(str(path), as_version=4)
    except Exception:
        return None


def read_notebook(data: bytes, name: str) -> tuple[Any, str]:
    """(NotebookNode, "") for a valid notebook file's bytes, else (None, why, in one sentence)."""
    import nbformat

    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        return None, f"{name} is not UTF-8 text (byte {e.start}), so it is not a notebook; it was not run."
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError) as e:
        return None, f"{name} is not valid JSON ({str(e)[:120]}), so it could not be read; it was not run."
    if not isinstance(raw, dict) or not isinstance(raw.get("nbformat"), int):
        return None, f"{name} is JSON but not a notebook (no 'nbformat' version); it was not run."
    if raw["nbformat"] != 4:
        return None, (
            f"{name} is in notebook format version {raw['nbformat']}; this course reads version 4 "
            "(save it again with Jupyter 4 or later); it was not run."
        )
    try:
        nb = nbformat.reads(text, as_version=4)
        nbformat.validate(nb)
    except Exception as e:
        return None, f"{name} is not a valid notebook ({type(e).__name__}: {str(e)[:160]}); it was not run."
    return nb, ""


def never_run(nb: Any) -> bool:
    """Whether no code cell of `nb` has been run (no execution count and no output anywhere)."""
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    return bool(code) and all(c.get("execution_count") is None and not c.get("outputs") for c in code)
