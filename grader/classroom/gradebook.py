"""`grader batch`'s tables: DIR/gradebook.csv (everything), DIR/canvas.csv (Canvas's grade import) and
DIR/canvas-review.csv (the students canvas.csv leaves out).

canvas.csv is for Canvas's gradebook import (app/models/gradebook_importer.rb in canvas-lms), whose rules decide
its shape: a column is matched to an existing assignment by the id ending its header, `Title (12345)` (the id comes
from the manifest's `canvas_assignment_id` or `--canvas-id`; without one the column is unmatched, and Canvas asks
the teacher to map it or create a new assignment); and a blank cell over a score already in Canvas counts as a
change, which would clear that score. So a student without a score (an error, a timeout, not graded yet) has no
row there, which Canvas leaves untouched, and is listed in canvas-review.csv instead, which Canvas refuses to import.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from grader.classroom.inputs import Submission
from grader.course.manifest import Manifest
from grader.reports.formats import clean_text, write_atomic


def number_cell(x: Any) -> str:
    """A number for a cell or a message: at most 4 decimals, no trailing zeros; "" for none."""
    if x is None or x == "":
        return ""
    return f"{float(x):.4f}".rstrip("0").rstrip(".")


def _cell(text: Any) -> str:
    """Text for a spreadsheet cell: printable, and never read as a formula (a leading = + - @ gets a quote)."""
    text = clean_text(text).replace("\n", " ").strip()
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def _write_csv(path: Path, rows: list[list[str]]) -> None:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    write_atomic(path, buf.getvalue())


def gradebook_rows(m: Manifest, subs: list[Submission], records: dict[str, dict]) -> list[list[str]]:
    head = [
        "student_id",
        "name",
        "email",
        *[p.name for p in m.parts],
        "total",
        "max",
        "status",
        "error",
        "seconds",
        "dataset",
        "device",
        "grader_version",
        "digest",
    ]
    rows = [
        head,
        [
            "Points Possible",
            "",
            "",
            *[number_cell(p.points) for p in m.parts],
            number_cell(m.points),
            number_cell(m.points),
            "",
            "",
            "",
            "",
            "",
            "",
            "",
        ],
    ]
    for s in subs:
        r = records.get(s.slug)
        for st in s.students:
            if r is None:
                rows.append(
                    [
                        _cell(st.id),
                        _cell(st.name),
                        _cell(st.email),
                        *[""] * len(m.parts),
                        "",
                        "",
                        "pending",
                        "",
                        "",
                        "",
                        "",
                        "",
                        s.digest,
                    ]
                )
                continue
            parts = r.get("parts") or {}
            rows.append(
                [
                    _cell(st.id),
                    _cell(st.name),
                    _cell(st.email),
                    *[number_cell(parts.get(p.name)) for p in m.parts],
                    number_cell(r.get("score")),
                    number_cell(r.get("max_score")),
                    r["status"],
                    _cell(r.get("error", "")),
                    number_cell(r.get("seconds")),
                    _cell(r.get("dataset", "")),
                    _cell(r.get("device", "")),
                    _cell(r.get("grader_version", "")),
                    r.get("digest", ""),
                ]
            )
    return rows


CANVAS_INFO = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]  # what Canvas's import reads a student by
# headers Canvas's import takes for totals and ignores: a title holding one would be dropped without a word
# (gradebook_importer.rb NON_ASSIGNMENT_COLUMN_HEADERS, matched anywhere in the header)
CANVAS_TOTALS = (
    "Current Score",
    "Current Points",
    "Current Grade",
    "Final Score",
    "Final Points",
    "Final Grade",
    "Override Score",
    "Override Grade",
    "Override Status",
)


def canvas_id_help(m: Manifest) -> str:
    return (
        f"run `grader batch` again with --canvas-id ID (nothing is regraded), or set canvas_assignment_id = ID in "
        f"assignments/{m.name}/assignment.toml; ID is the number ending the assignment's Canvas address "
        "(.../courses/1/assignments/ID)"
    )


def canvas_title(m: Manifest, canvas_id: int | None) -> str:
    """The assignment's column: `Title (12345)` with the Canvas id, which Canvas matches to that assignment. Without
    one, a title that ends in no number, which Canvas cannot match: its import stops to ask the teacher to map the
    column to an assignment (or create one), and the title says how to set the id."""
    if canvas_id:
        return f"{m.title} ({canvas_id})"
    return f"{m.title} ({m.name}: no Canvas assignment id, set one with grader batch --canvas-id)"


def _canvas_split(subs: list[Submission], records: dict[str, dict]) -> tuple[list, list]:
    """(students with a score, students to review with why): a score is only a graded record's."""
    ready, review = [], []
    for s in subs:
        r = records.get(s.slug)
        score = number_cell(r.get("score")) if r and r.get("status") == "graded" and not r.get("not_judged") else ""
        for st in s.students:
            if score:
                ready.append((st, score))
            elif r is not None and r.get("status") == "graded" and r.get("not_judged"):
                why = (
                    f"{r['not_judged']} check(s) could not be judged (an error in the course's checks: see "
                    "grader_errors in results.json); fix them and grade again"
                )
                review.append((st, "not judged", why))
            elif r is None:
                review.append((st, "pending", "not graded yet"))
            elif r.get("status") == "graded":
                review.append((st, "graded", "graded, but its results hold no score"))
            else:
                review.append((st, r.get("status", "error"), r.get("error", "")))
    return ready, review


def canvas_rows(
    m: Manifest, subs: list[Submission], records: dict[str, dict], canvas_id: int | None = None
) -> list[list[str]]:
    """Canvas's grade import: Student, ID, SIS User ID, SIS Login ID, Section, then the assignment's column, a
    Points Possible row, and a row per student with a score. A student without one has no row: Canvas leaves a
    student the file does not name as they are, while a blank cell (or "-") over a score counts as a change."""
    rows = [
        [*CANVAS_INFO, _cell(canvas_title(m, canvas_id))],
        ["Points Possible", "", "", "", "", number_cell(m.points)],
    ]
    ready, _ = _canvas_split(subs, records)
    for st, score in ready:
        rows.append([_cell(st.name or st.id), "", _cell(st.id), _cell(st.email or st.id), "", score])
    return rows


def canvas_review_rows(subs: list[Submission], records: dict[str, dict]) -> list[list[str]]:
    """The students canvas.csv leaves out, so that their Canvas scores stay as they are: to grade again or by hand.
    Its first header is no `Student`, so Canvas refuses it ("Invalid header row") if it is imported by mistake."""
    _, review = _canvas_split(subs, records)
    rows = [["status", "student_id", "name", "email", "why"]]
    for st, status, why in review:
        rows.append([status, _cell(st.id), _cell(st.name), _cell(st.email), _cell(why)])
    return rows


def canvas_notes(m: Manifest, canvas_id: int | None, subs: list[Submission], records: dict[str, dict]) -> list[str]:
    """What the teacher must know before importing canvas.csv."""
    notes = []
    if not canvas_id:
        notes.append(
            "canvas.csv has no Canvas assignment id, so Canvas's import cannot match its column to the assignment "
            f"(it will ask you to pick one or create a new one): {canvas_id_help(m)}"
        )
    totals = [t for t in CANVAS_TOTALS if t in m.title]
    if totals:
        notes.append(
            f"canvas.csv: the title {m.title!r} holds {totals[0]!r}, which Canvas's import takes for a total and "
            "ignores: change the manifest's title"
        )
    _, review = _canvas_split(subs, records)
    if review:
        notes.append(
            f"canvas.csv leaves out {len(review)} student(s) without a final score (error, timeout, a check that "
            "could not be judged, or not graded yet), so "
            "their Canvas scores stay as they are: see canvas-review.csv"
        )
    return notes


def write_tables(
    out: Path, m: Manifest, subs: list[Submission], records: dict[str, dict], canvas_id: int | None = None
) -> None:
    _write_csv(out / "gradebook.csv", gradebook_rows(m, subs, records))
    _write_csv(out / "canvas.csv", canvas_rows(m, subs, records, canvas_id))
    _write_csv(out / "canvas-review.csv", canvas_review_rows(subs, records))
