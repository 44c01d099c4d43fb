"""Real platforms: `canvas.csv` read the way Canvas's gradebook import reads it, and `junit.xml` validated against
the Ant JUnit schema CI tools validate against.

Canvas: `canvas_import` below emulates canvas-lms's importer, app/models/gradebook_importer.rb (the version of
2025, with Assignment.title_and_id from app/models/assignment.rb and the preview page's merge step from
ui/features/gradebook_uploads), for what decides the fate of a score: which header row it accepts, how a column
is matched to an assignment, how a row is matched to a student, and which cells count as a change. Each rule
quotes the Ruby it stands for; the first tests replay cases of its spec (spec/models/gradebook_importer_spec.rb).

JUnit: tests/grader/JUnit.xsd is windyroad/JUnit-Schema's JUnit.xsd ("JUnit test result schema for the Apache
Ant JUnit and JUnitReport tasks"), unchanged but for a comment naming its source and licence.
"""

from __future__ import annotations

import csv
import io
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bench.batch import make_course, write_submission
from grader.classroom import batch
from grader.cli import build_parser, main
from grader.course import manifest
from grader.errors import GraderError
from grader.reports import formats as report
from tests.conftest import ROOT, copy_submission, replace_function

# -- an emulation of Canvas's gradebook importer ---------------------------------------------------------------

# Assignment.title_and_id: `if str =~ /\A(.*)\s\((\d+)\)\z/ then [$1, $2] else [str, nil]`
TITLE_AND_ID = re.compile(r"\A(.*)\s\((\d+)\)\Z")
# `NON_ASSIGNMENT_COLUMN_HEADERS = ["Current Score", ...]`, stripped from the header by
# `stripped_row.grep_v(Regexp.new(NON_ASSIGNMENT_COLUMN_HEADERS.join("|")))`: anywhere in it, case and all
NON_ASSIGNMENT_COLUMN_HEADERS = (
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
NON_ASSIGNMENT = re.compile("|".join(NON_ASSIGNMENT_COLUMN_HEADERS))


@dataclass
class Course:
    """What Canvas holds: assignments (id -> title, points), students (user id -> name, SIS user id, login) and
    scores (user id, assignment id) -> the score as the importer reads it back (`submission.score.to_s`)."""

    assignments: dict[int, tuple[str, float]]
    students: dict[int, dict]
    scores: dict[tuple[int, int], str] = field(default_factory=dict)


@dataclass
class Import:
    error: str = ""  # `@progress.message = "Invalid header row"`
    matched: dict[str, int] = field(default_factory=dict)  # header -> the existing assignment it updates
    new_assignments: list[str] = field(default_factory=list)  # titles of columns matched to no assignment
    points: dict[str, str] = field(default_factory=dict)  # header -> the Points Possible row's cell
    students: list[str] = field(default_factory=list)  # the rows' students (a user id, or "new: NAME")
    changes: dict[tuple[str, str], tuple[str | None, str | None]] = field(default_factory=dict)  # -> (old, new)

    def changed_scores(self) -> dict[tuple[str, str], tuple]:
        """Changes to a score that exists in Canvas (a number, not blank)."""
        return {k: v for k, v in self.changes.items() if v[0] not in (None, "")}


def _present(value: str | None) -> bool:  # Rails' `present?`: not nil, not only whitespace
    return value is not None and value.strip() != ""


def _no_score(value: str | None) -> bool:  # `def no_score?(value) value.blank? || value == "-" end`
    return not _present(value) or value == "-"


def _i18n_n(value: str) -> str:  # `I18n.n(value, precision: 2)`: a number rounded to 2 places; other text as it is
    try:
        number = float(value)
    except ValueError:
        return value
    return f"{number:.2f}" if math.isfinite(number) else value


def no_change_to_value(new: str | None, current: str | None) -> bool:
    """`no_change_to_value?(new_value:, current_value:, consider_excused: true)`, line by line."""
    if new == current:  # `return true if new_value == current_value`
        return True
    if _no_score(current) and _no_score(new):  # `return true if no_score?(current_value) && no_score?(new_value)`
        return True
    if not (_present(current) and _present(new)):  # `return false unless current_value.present? && new_value.present?`
        return False
    if new.upper() == "EX" or current.upper() == "EX":  # `return false if consider_excused && (...casecmp?("EX")...)`
        return False
    return _i18n_n(current) == _i18n_n(new)  # `I18n.n(current_value, precision: 2) == I18n.n(new_value, precision: 2)`


def merged_no_change(new: str | None, original: str | None) -> bool:
    """The preview page's test after the teacher maps an unmatched column to an assignment (gradebook_uploads:
    `parseFloat(submission.original_grade) == parseFloat(submission.grade) || (!submission.original_grade &&
    !submission.grade)`)."""

    def number(v: str | None) -> float:
        m = re.match(r"\s*[-+]?(\d+\.?\d*|\.\d+)", v or "")
        return float(m.group(0)) if m else math.nan  # parseFloat: the leading number, else NaN

    return number(new) == number(original) or (not original and not new)


def _to_i(text: str | None) -> int:  # Ruby's String#to_i: the leading digits, else 0
    m = re.match(r"\s*([-+]?\d+)", text or "")
    return int(m.group(1)) if m else 0


def canvas_import(text: str, course: Course, mapped: dict[str, int] | None = None) -> Import:
    """What Canvas makes of `text`; `mapped`: unmatched columns (by title) the teacher maps to an assignment in the
    preview (`obj.id = obj.previous_id = val`, its original grades then looked up for each student)."""
    # csv_stream: `skip_lines: /^[;, ]+$/` (our files are comma separated: `identify_delimiter`)
    lines = [line for line in text.splitlines() if not re.fullmatch(r"[;, ]+", line)]
    rows = list(csv.reader(lines))
    result = Import()
    header = rows[0] if rows else []
    # row_has_student_headers?: `row.length > 3 && row[0].include?("Student") && row[1].include?("ID")`
    if not (len(header) > 3 and "Student" in header[0] and "ID" in header[1]):
        result.error = "Invalid header row"  # `rescue InvalidHeaderRow; @progress.message = "Invalid header row"`
        return result
    # update_column_count: `@student_columns = 3`; `if /SIS\s+Login\s+ID/.match?(row[2])` one more; `elsif row[2] =~
    # /SIS\s+User\s+ID/ && row[3] =~ /SIS\s+Login\s+ID/` two more (and an Integration ID after them is skipped)
    n, sis_user, sis_login = 3, None, None
    if re.search(r"SIS\s+Login\s+ID", header[2]):
        n, sis_login = 4, 2
    elif re.search(r"SIS\s+User\s+ID", header[2]) and re.search(r"SIS\s+Login\s+ID", header[3]):
        integration = len(header) > 4 and re.search(r"Integration\s+ID", header[4])
        n, sis_user, sis_login = 5 + bool(integration), 2, 3
    assert not any("Root Account" in h for h in header), "not emulated: the Root Account column"
    # header?: `return false unless last_student_info_column(row).include?("Section")` (no custom columns here)
    if "Section" not in header[n - 1]:
        result.error = "Invalid header row"
        return result
    # strip_non_assignment_columns: `row.shift(@student_columns)`, then the totals are dropped (grep_v)
    columns = []
    for name in [h for h in header[n:] if not NON_ASSIGNMENT.search(h)]:
        # parse_assignments: `title, id = Assignment.title_and_id(name_and_id)`
        m = TITLE_AND_ID.match(name)
        title, aid = (m.group(1), int(m.group(2))) if m else (name, None)
        # `assignment = @all_assignments[id.to_i] if id.present?`
        found = aid if aid in course.assignments else None
        if found is None:  # `# backward compat` `@all_assignments.find { |_id, a| a.title == name_and_id }`
            found = next((i for i, (t, _) in course.assignments.items() if t == name), None)
        merged = False
        if found is None:  # `assignment ||= Assignment.new(title: title || name_and_id)`
            result.new_assignments.append(title)
            found = (mapped or {}).get(title)
            merged = found is not None
        else:
            result.matched[name] = found
        # calc_assignment_indices: `original_header_row.index(assignment_and_header[:header_name])`
        columns.append((name, header.index(name), found, merged))
    for row in rows[1:]:
        # check_for_non_student_row: `if row[0]&.include?("Points Possible")` -> process_pp
        if row and "Points Possible" in row[0]:
            result.points = {name: row[i] for name, i, _, _ in columns if i < len(row)}
            continue
        # `if row.compact.all? { |column| column =~ /^\s*(Muted|Manual Posting.*)?\s*$/i }` -> not a student
        if all(re.fullmatch(r"\s*(Muted|Manual Posting.*)?\s*", c, re.IGNORECASE) for c in row):
            continue
        # process_student: `student = @all_students[student_id.to_i] if student_id.present?`, then the pseudonyms
        # by SIS user id and login id, then `s.name == name || s.sortable_name == name`, else `User.new(name:)`
        uid = _to_i(row[1]) if _present(row[1]) and _to_i(row[1]) in course.students else None
        for col, key in ((sis_user, "sis_user_id"), (sis_login, "login_id")):
            if uid is None and col is not None and _present(row[col]):
                uid = next((u for u, s in course.students.items() if s.get(key) == row[col]), None)
        if uid is None:
            uid = next((u for u, s in course.students.items() if s["name"] == row[0]), None)
        student = str(uid) if uid is not None else f"new: {row[0]}"
        result.students.append(student)
        for name, i, aid, merged in columns:
            # process_submissions: `grade = row[assignment_index]&.strip`
            new = row[i].strip() if i < len(row) else None
            # the existing score: `score = submission.excused? ? "EX" : submission.score.to_s` (none: nil)
            old = course.scores.get((uid, aid)) if uid is not None and aid is not None else None
            if not (merged_no_change if merged else no_change_to_value)(new, old):
                result.changes[(student, name)] = (old, new)
    return result


def course_of(rows: str, **kw) -> tuple[str, Course]:
    return "\n".join(rows) + "\n", Course(**kw)


# -- the emulation replays canvas-lms's spec ----------------------------------------------------------------------

STUDENTS = {6: {"name": "Some Student", "sis_user_id": "s6", "login_id": "s6@uni.edu"}}


def test_it_parses_new_and_existing_assignments():
    # spec: "parses new and existing assignments" (Assignment 1 exists, Assignment 2 is new)
    text, course = course_of(
        ["Student,ID,Section,Assignment 1,Assignment 2", "Some Student,,,,"],
        assignments={1: ("Assignment 1", 10), 3: ("Assignment 3", 10)},
        students=STUDENTS,
    )
    got = canvas_import(text, course)
    assert got.matched == {"Assignment 1": 1} and got.new_assignments == ["Assignment 2"]


def test_a_header_ending_in_an_id_is_matched_by_the_id_alone():
    # `title_with_id: "#{title} (#{id})"` is how Canvas's own export heads a column
    text, course = course_of(
        ["Student,ID,Section,Renamed since (12),Other title (99)", "Some Student,6,,1,2"],
        assignments={12: ("Assignment 12", 10)},
        students=STUDENTS,
    )
    got = canvas_import(text, course)
    assert got.matched == {"Renamed since (12)": 12}
    assert got.new_assignments == ["Other title"]  # an id the course lacks: a new assignment, the id dropped


def test_the_header_must_name_the_student_columns():
    # spec: "fails and updates progress if invalid header row"
    text, course = course_of(['"",,0123456,,,99', ",,,0231163,,99"], assignments={}, students={})
    assert canvas_import(text, course).error == "Invalid header row"


def test_scores_are_compared_at_two_decimal_places():
    # spec: "does not include assignments that don't have any grade changes" and "checks for score changes at a
    # precision of 2 decimal places" (10.987 in Canvas, 10.99 in the file)
    text, course = course_of(
        ["Student,ID,Section,Assignment 1", ",6,,10.99"],
        assignments={1: ("Assignment 1", 10)},
        students=STUDENTS,
        scores={(6, 1): "10.987"},
    )
    assert canvas_import(text, course).changes == {}
    course.scores[(6, 1)] = "8.0"  # spec: "includes assignments that the grade changed for an existing user"
    assert canvas_import(text, course).changes == {("6", "Assignment 1"): ("8.0", "10.99")}


def test_a_dash_or_a_blank_over_no_score_is_no_change_but_over_a_score_it_is():
    # spec: "does not grade submissions that had no grade and were marked with '-' in the import"
    rows = ["Student,ID,Section,Assignment 1", ",6,,{}"]
    for cell in ("-", "", "  "):
        text, course = course_of(
            [rows[0], rows[1].format(cell)], assignments={1: ("Assignment 1", 10)}, students=STUDENTS
        )
        assert canvas_import(text, course).changes == {}
        # with a score in Canvas: `return false unless current_value.present? && new_value.present?` (blank) and the
        # 2-place comparison of "8.0" with "-" (dash): a change, which the preview's merge keeps too
        # (`parseFloat(submission.original_grade) == parseFloat(submission.grade) || (!original_grade && !grade)`)
        course.scores[(6, 1)] = "8.0"
        assert canvas_import(text, course).changes == {("6", "Assignment 1"): ("8.0", cell.strip())}


def test_muted_and_points_possible_rows_are_not_students():
    # spec: "handles muted line and being sorted in weird places"
    text, course = course_of(
        [
            "Student,ID,Section,Assignment 1,Final Score",
            '"Blend, Bill",6,My Course,-,',
            "Points Possible,,,10,",
            ", ,,Muted,",
            '"Farner, Todd",4,My Course,-,',
        ],
        assignments={},
        students={},
    )
    got = canvas_import(text, course)
    assert got.points == {"Assignment 1": "10"} and len(got.students) == 2
    assert got.new_assignments == ["Assignment 1"]  # "Final Score" is a total, not an assignment


def test_students_are_found_by_sis_user_id_then_login_then_name():
    # spec: "Lookups with either Student Name, ID, SIS User ID, or SIS Login ID"
    text, course = course_of(
        [
            "Student,ID,SIS User ID,SIS Login ID,Section,Assignment 1",
            "    Points Possible,,,,",
            "Some Name,,,,,99",
            ",,SISUSERID,,,99",
            ",,,login3,,99",
            ",,bogusSISid,,,99",
        ],
        assignments={},
        students={
            1: {"name": "Some Name"},
            2: {"name": "Two", "sis_user_id": "SISUSERID"},
            3: {"name": "Three", "login_id": "login3"},
        },
    )
    assert canvas_import(text, course).students == ["1", "2", "3", "new: "]


# -- our canvas.csv, imported ---------------------------------------------------------------------------------------

CANVAS_ID = 12345
MANIFEST_ID = 777


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    return make_course(tmp_path_factory.mktemp("course"))


def with_canvas_id(course: Path, tmp_path: Path, value: str) -> Path:
    """A copy of the tiny course whose manifest has `canvas_assignment_id = value`."""
    root = tmp_path / "course"
    (root / "assignments" / "mini").mkdir(parents=True)
    text = (course / "assignments" / "mini" / "assignment.toml").read_text()
    (root / "assignments" / "mini" / "assignment.toml").write_text(f"canvas_assignment_id = {value}\n" + text)
    return root


def a_class() -> tuple[list[batch.Submission], dict[str, dict]]:
    """Five students: two graded (one a group of two), an error, a timeout, one not graded yet."""
    S, T = batch.Submission, batch.Student
    subs = [
        S([T("ada", "Ada L", "ada@uni.edu")], None, slug="ada"),
        S([T("bob", "Bob M", "bob@uni.edu"), T("cy", "Cy N", "cy@uni.edu")], None, slug="bob"),
        S([T("dee", "Dee O", "dee@uni.edu")], None, slug="dee"),
        S([T("eve", "Eve P", "eve@uni.edu")], None, slug="eve"),
        S([T("fay", "Fay Q", "fay@uni.edu")], None, slug="fay"),
    ]
    records = {
        "ada": {"status": "graded", "score": 9.5, "max_score": 10},
        "bob": {"status": "graded", "score": 0.0, "max_score": 10},
        "dee": {"status": "error", "error": "dee.zip: not a readable zip archive"},
        "eve": {"status": "timeout", "error": "=HYPERLINK(evil) took longer than 300 s"},
    }  # fay: pending
    return subs, records


def canvas_course(assignment_title: str = "Mini: squares and scales") -> Course:
    """The Canvas course: the assignment exists (id 12345), every student has a score already."""
    people = ["ada", "bob", "cy", "dee", "eve", "fay"]
    return Course(
        assignments={CANVAS_ID: (assignment_title, 10.0), 99: ("Other", 5.0)},
        students={
            i + 1: {"name": f"{p.title()} X", "sis_user_id": p, "login_id": f"{p}@uni.edu"}
            for i, p in enumerate(people)
        },
        scores={(i + 1, CANVAS_ID): "7.0" for i in range(len(people))} | {(1, 99): "5.0"},
    )


def write(out: Path, course: Path, canvas_id: int | None) -> tuple[str, str]:
    m = manifest.load("mini", course)
    subs, records = a_class()
    batch.write_tables(out, m, subs, records, canvas_id)
    return (out / "canvas.csv").read_text(), (out / "canvas-review.csv").read_text()


def test_with_an_id_canvas_updates_that_assignment_and_no_score_without_ours(course, tmp_path):
    canvas, review = write(tmp_path, course, CANVAS_ID)
    got = canvas_import(canvas, canvas_course())
    assert got.error == "" and got.new_assignments == []
    assert got.matched == {f"Mini: squares and scales ({CANVAS_ID})": CANVAS_ID}
    assert got.points == {f"Mini: squares and scales ({CANVAS_ID})": "10"}  # the manifest's points
    assert got.students == ["1", "2", "3"]  # found by their SIS user id; no one unknown
    title = f"Mini: squares and scales ({CANVAS_ID})"
    assert got.changed_scores() == {
        ("1", title): ("7.0", "9.5"),
        ("2", title): ("7.0", "0"),
        ("3", title): ("7.0", "0"),  # both members of a group
    }  # dee (error), eve (timeout) and fay (pending) keep their 7.0: they have no row to change it


def test_the_students_left_out_are_listed_for_review_in_a_file_canvas_refuses(course, tmp_path):
    _, review = write(tmp_path, course, CANVAS_ID)
    rows = list(csv.reader(io.StringIO(review)))
    assert rows[0] == ["status", "student_id", "name", "email", "why"]
    assert [r[:2] for r in rows[1:]] == [["error", "dee"], ["timeout", "eve"], ["pending", "fay"]]
    assert "not a readable zip" in rows[1][4] and rows[2][4].startswith("'=")  # never a formula
    assert canvas_import(review, canvas_course()).error == "Invalid header row"


def test_a_row_blank_for_an_error_would_clear_a_score_in_canvas(course, tmp_path):
    """Why canvas.csv has no row for an error: the layout written before, a blank cell, changes the score."""
    title = f"Mini: squares and scales ({CANVAS_ID})"
    blank = "Student,ID,SIS User ID,SIS Login ID,Section,{}\nPoints Possible,,,,,10\nDee O,,dee,dee@uni.edu,,\n"
    got = canvas_import(blank.format(title), canvas_course())
    assert got.changed_scores() == {("4", title): ("7.0", "")}
    old_title = "Mini: squares and scales (mini)"  # and mapped by hand in the preview, without an id
    got = canvas_import(blank.format(old_title), canvas_course(), mapped={old_title: CANVAS_ID})
    assert got.changed_scores() == {("4", old_title): ("7.0", "")}


def test_the_id_comes_from_the_manifest_and_the_option_wins(course, tmp_path):
    root = with_canvas_id(course, tmp_path, str(MANIFEST_ID))
    m = manifest.load("mini", root)
    assert m.canvas_assignment_id == MANIFEST_ID
    assert batch.canvas_title(m, m.canvas_assignment_id) == f"Mini: squares and scales ({MANIFEST_ID})"
    assert manifest.load("mini", course).canvas_assignment_id is None
    for name in manifest.available(ROOT):  # the course's own manifests: no id (it changes with each course copy)
        assert manifest.load(name, ROOT).canvas_assignment_id is None


def test_without_an_id_canvas_matches_nothing_and_the_header_says_how_to_set_it(course, tmp_path):
    canvas, _ = write(tmp_path, course, None)
    header = next(csv.reader(io.StringIO(canvas)))
    assert header[:5] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
    assert "no Canvas assignment id" in header[5] and "--canvas-id" in header[5]
    got = canvas_import(canvas, canvas_course())
    # no id, and no assignment of that exact title (the backward-compatible match): Canvas's preview asks the
    # teacher to map the column to an assignment or create one (`if (!this.previous_id) needingReview[thing].push`)
    assert got.matched == {} and got.new_assignments == [header[5]]
    assert got.changed_scores() == {}  # nothing is overwritten until the teacher maps the column
    mapped = canvas_import(canvas, canvas_course(), mapped={header[5]: CANVAS_ID})
    assert sorted(k[0] for k in mapped.changed_scores()) == ["1", "2", "3"]  # then only the students with a score
    m = manifest.load("mini", course)
    notes = batch.canvas_notes(m, None, *a_class())
    assert any("--canvas-id" in n and "canvas_assignment_id" in n for n in notes)
    assert any("3 student(s)" in n and "canvas-review.csv" in n for n in notes)
    assert not any("no Canvas assignment id" in n for n in batch.canvas_notes(m, CANVAS_ID, *a_class()))


def test_every_title_of_the_course_reaches_canvas_as_an_assignment():
    """A title holding a total's name ("Final Score") would be dropped by the importer without a word."""
    for name in manifest.available(ROOT):
        m = manifest.load(name, ROOT)
        for canvas_id in (CANVAS_ID, None):
            title = batch.canvas_title(m, canvas_id)
            assert not NON_ASSIGNMENT.search(title), title
            match = TITLE_AND_ID.match(title)
            assert (int(match.group(2)) if match else None) == canvas_id, title
        assert not [n for n in batch.canvas_notes(m, CANVAS_ID, [], {}) if "total" in n]
    assert batch.CANVAS_TOTALS == NON_ASSIGNMENT_COLUMN_HEADERS  # what canvas_notes warns of


@pytest.mark.parametrize("value", ["0", "-3", '"12345"', "true", "1.5", '"Assignment 1"'])
def test_a_bad_manifest_id_is_an_error_naming_the_key(course, tmp_path, value):
    root = with_canvas_id(course, tmp_path, value)
    with pytest.raises(GraderError, match=r"assignment\.toml: 'canvas_assignment_id' should be .* positive whole"):
        manifest.load("mini", root)


def test_a_misspelt_key_is_caught(course, tmp_path):
    root = tmp_path / "course"
    (root / "assignments" / "mini").mkdir(parents=True)
    text = (course / "assignments" / "mini" / "assignment.toml").read_text()
    (root / "assignments" / "mini" / "assignment.toml").write_text("canvas_assignment = 5\n" + text)
    with pytest.raises(GraderError, match="did you mean 'canvas_assignment_id'"):
        manifest.load("mini", root)


@pytest.mark.parametrize("value", ["0", "-1", "abc", "12.5", "https://canvas.uni.edu/courses/1/assignments/5", "٣"])
def test_a_bad_canvas_id_option_is_refused_before_grading(course, tmp_path, capsys, value):
    (tmp_path / "class").mkdir()
    argv = ["--course", str(course), "batch", str(tmp_path / "class"), "-a", "mini", "--out", str(tmp_path / "out")]
    assert main([*argv, "--canvas-id", value]) == 2
    assert "--canvas-id: expected the assignment's id in Canvas" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_option_is_parsed():
    args = build_parser().parse_args(["batch", "in", "-a", "a1_knn", "--out", "o", "--canvas-id", "12345"])
    assert batch.canvas_id_option(args.canvas_id) == 12345
    assert build_parser().parse_args(["batch", "in", "-a", "a1_knn", "--out", "o"]).canvas_id is None


def test_grader_batch_writes_and_says_it(course, tmp_path, capsys):
    """One graded student and one unreadable zip, graded with --canvas-id, then again without it (nothing
    regraded): the header follows the id, the error stays out of canvas.csv, and the output says what to do."""
    klass = tmp_path / "class"
    write_submission(klass / "ada", {})
    (klass / "bob.zip").write_bytes(b"PK\x03\x04 this is not a zip archive")
    out = tmp_path / "out"
    argv = ["--course", str(course), "batch", str(klass), "-a", "mini", "--out", str(out), "-j", "1"]
    assert main([*argv, "--no-similarity", "--canvas-id", str(CANVAS_ID)]) == 0
    printed = capsys.readouterr()
    canvas = list(csv.reader(open(out / "canvas.csv", newline="")))
    assert canvas[0][5] == f"Mini: squares and scales ({CANVAS_ID})" and [r[2] for r in canvas[2:]] == ["ada"]
    review = list(csv.reader(open(out / "canvas-review.csv", newline="")))
    assert [r[:2] for r in review[1:]] == [["error", "bob"]]
    assert "canvas-review.csv" in printed.out and "no Canvas assignment id" not in printed.out + printed.err

    assert main([*argv, "--no-similarity"]) == 0
    printed = capsys.readouterr()
    assert "graded 0" in printed.out and "2 unchanged" in printed.out
    assert "no Canvas assignment id" in printed.out and "--canvas-id" in printed.out
    assert "no Canvas assignment id" in printed.err  # said at the start too
    canvas = list(csv.reader(open(out / "canvas.csv", newline="")))
    assert "no Canvas assignment id" in canvas[0][5] and [r[2] for r in canvas[2:]] == ["ada"]


# -- junit.xml against the Ant JUnit schema ---------------------------------------------------------------------

XSD = Path(__file__).with_name("JUnit.xsd")
HOSTILE = '\\x1b[2J\\x1b]0;title\\x07 ]]> </failure><testcase name="forged"/> & \\x00 \\udcff \\u202e'


@pytest.fixture(scope="module")
def schema():
    xmlschema = pytest.importorskip("xmlschema")  # the `test` extra installs it
    return xmlschema.XMLSchema(str(XSD))


@pytest.fixture(scope="module")
def gradings(tmp_path_factory) -> dict:
    """A1's warm-up graded three times: the reference (passes; one check passes with a note), one wrong function
    and one whose worker dies (fails), and a file that raises hostile text at import with the other file missing
    (every check fails; a problem)."""
    from grader.judge.runner import grade

    tmp = tmp_path_factory.mktemp("junit")
    failing = copy_submission(tmp / "failing")
    warmup = failing / "a1_knn" / "pytorch101.py"
    replace_function(warmup, "count_tensor_elements", "def count_tensor_elements(x):\n    return int(x.shape[0])\n")
    replace_function(warmup, "create_tensor_of_pi", "def create_tensor_of_pi(M, N):\n    raise SystemExit(3)\n")
    crashing = copy_submission(tmp / "crashing")
    (crashing / "a1_knn" / "knn.py").unlink()
    pytorch101 = crashing / "a1_knn" / "pytorch101.py"
    pytorch101.write_text(pytorch101.read_text() + f"\nraise RuntimeError('{HOSTILE}')\n")
    return {
        name: grade(path, "a1_knn", device="cpu", parts=["warmup"])
        for name, path in (("passing", ROOT), ("failing", failing), ("crashing", crashing))
    }


def test_the_schema_is_the_ant_one(schema):
    text = XSD.read_text()
    assert "JUnit test result schema for the Apache Ant JUnit and JUnitReport tasks" in text
    assert "Source: https://github.com/windyroad/JUnit-Schema/blob/" in text and "Apache License" in text
    assert {"testsuites", "testsuite"} <= set(schema.elements)  # either may be the root


@pytest.mark.parametrize("kind", ["passing", "failing", "crashing"])
def test_junit_of_a_grading_is_valid_ant_junit(schema, gradings, kind):
    result = gradings[kind]
    text = report.junit(result)
    schema.validate(text)  # raises with the first violation
    root = ET.fromstring(text.encode("utf-8"))
    assert root.tag == "testsuites" and root.attrib == {}  # what pytest, Jenkins and GitLab write and read
    [suite] = root
    failed = [c for c in result.checks if not c.passed]
    assert suite.get("tests") == str(len(result.checks)) and suite.get("failures") == str(len(failed))
    assert suite.get("package") == suite.get("name") == "a1_knn" and suite.get("id") == "0"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", suite.get("timestamp")) and suite.get("hostname")
    assert suite.get("timestamp") == result.started_at[:19]  # started_at is UTC; the schema takes no zone
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [c.id for c in result.checks]
    failures = {c.get("name"): c.find("failure") for c in cases if c.find("failure") is not None}
    assert sorted(failures) == sorted(c.id for c in failed)
    assert all(f.get("type") and f.text for f in failures.values())
    assert not root.findall(".//testcase/system-out")
    out = suite.find("system-out").text or ""
    if kind == "passing":
        assert not failed and all(f"[{c.id}] " in out for c in result.checks if c.output)  # notes, under their id
    if kind == "failing":
        assert {"a1.warmup.count_tensor_elements", "a1.warmup.create_tensor_of_pi"} <= set(failures)
        assert "first dimension" in failures["a1.warmup.count_tensor_elements"].text
    if kind == "crashing":
        assert "knn.py is missing" in out  # every check that runs the code fails (one only reads it)
        assert len(failed) >= len(result.checks) - 1 and "a1.warmup.count_tensor_elements" in failures
        feedback = "".join(f.text + f.get("message") for f in failures.values())
        assert "forged" in feedback and "\x1b" not in text and "\x00" not in text and "\u202e" not in text
        assert not root.findall(".//testcase[@name='forged']")  # text, not markup


def test_junit_of_a_hostile_or_odd_result_is_valid(schema):
    from tests.grader.test_report import result

    hostile = result()
    schema.validate(report.junit(hostile))  # started_at "": the time of writing
    hostile.started_at, hostile.execution_time, hostile.checks[0].seconds = "not a date", math.nan, -1.0
    hostile.assignment, hostile.checks[1].id = " ", "\x1b[2J"
    text = report.junit(hostile)
    schema.validate(text)
    suite = ET.fromstring(text.encode("utf-8")).find("testsuite")
    assert suite.get("time") == "0.000" and suite.get("name") == "assignment"
