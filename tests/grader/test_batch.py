"""`grader batch`: a class of synthetic submissions of a tiny course (bench.batch) graded into a gradebook.

Most tests grade the tiny course (each submission takes seconds); one slow test grades the real reference and the
unfinished kit of A1. The expected points come from the tiny manifest (basics: square 3 + total 3; more: scale 4).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from bench.batch import REFERENCE, VARIANTS, make_course, write_submission
from grader.classroom import batch
from grader.classroom.batch import Options, run_batch
from grader.errors import GraderError
from grader.kit.release import stub_source
from grader.sandbox.isolation import detect_isolation

ROOT = Path(__file__).resolve().parents[2]
SQUARE, TOTAL, SCALE = 3, 3, 4  # the tiny manifest's points

HANGS = REFERENCE["work.py"].replace("def square(x):\n", "def square(x):\n    while True:\n        pass\n")
CRASHES = "raise RuntimeError('this module fails at import')\n" + REFERENCE["work.py"]
COPIED = """import torch


def square(x):
    out = torch.empty_like(x)
    flat_in = x.reshape(-1)
    flat_out = out.reshape(-1)
    for i in range(flat_in.numel()):
        value = flat_in[i]
        flat_out[i] = value * value
    return out


def total(x):
    acc = torch.zeros((), dtype=x.dtype)
    for v in square(x).reshape(-1):
        acc = acc + v
    return acc
"""
# the same code, renamed and reformatted
COPIED_AGAIN = """import torch

def square(t):
    res = torch.empty_like(t)
    a = t.reshape(-1); b = res.reshape(-1)
    for k in range(a.numel()):
        val = a[k]
        b[k] = val * val
    return res

def total(t):
    s = torch.zeros((), dtype=t.dtype)
    for w in square(t).reshape(-1):
        s = s + w
    return s
"""


def _zip_folder(folder: Path, dest: Path) -> Path:
    with zipfile.ZipFile(dest, "w") as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(folder).as_posix())
    shutil.rmtree(folder)
    return dest


def make_class(folder: Path) -> Path:
    """A dozen submissions: reference, kit, single-function bugs, a hang, a crash at import, zips, a corrupt zip,
    a file that is no submission, an empty folder, and two copies of the same unusual code."""
    for name in ("reference", "kit", "square_twice", "total_mean", "scale_adds"):
        write_submission(folder / name, VARIANTS[name])
    write_submission(folder / "hangs", {"work.py": HANGS})
    _zip_folder(write_submission(folder / "crashes_at_import", {"work.py": CRASHES}), folder / "crashes_at_import.zip")
    _zip_folder(write_submission(folder / "zipped_reference", {}), folder / "zipped_reference.zip")
    (folder / "corrupt.zip").write_bytes(b"PK\x03\x04 this is not a zip archive")
    (folder / "notes.txt").write_text("not a submission")
    (folder / "empty").mkdir()
    write_submission(folder / "copy_a", {"work.py": COPIED})
    write_submission(folder / "copy_b", {"work.py": COPIED_AGAIN})
    return folder


def rows(out: Path) -> dict[str, dict]:
    with open(out / "gradebook.csv", newline="") as f:
        return {r["student_id"]: r for r in csv.DictReader(f)}


def comparable(out: Path) -> list[dict]:
    """The gradebook without what may differ between two gradings of the same class (the time taken)."""
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows(out).values()]


def options(course: Path, klass: Path, out: Path, **kw) -> Options:
    return Options(input=klass, assignment="mini", out=out, kit=course, jobs=kw.pop("jobs", 2), **kw)


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    return make_course(tmp_path_factory.mktemp("course"))


@pytest.fixture(scope="module")
def klass(tmp_path_factory) -> Path:
    return make_class(tmp_path_factory.mktemp("class"))


@pytest.fixture(scope="module")
def graded(course, klass, tmp_path_factory) -> tuple[Path, batch.Summary]:
    out = tmp_path_factory.mktemp("out")
    summary = run_batch(options(course, klass, out), stream=io.StringIO())
    return out, summary


# -- the class graded ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_class_grades_into_the_right_rows(graded):
    out, summary = graded
    book = rows(out)
    assert summary.graded == 12 and summary.skipped == 0  # notes.txt is no submission: a row, no grading
    assert list(book)[:2] == ["Points Possible", "copy_a"]  # the points row, then students by id
    possible = book["Points Possible"]
    assert (possible["basics"], possible["more"], possible["total"]) == ("6", "4", "10")

    def points(sid):
        r = book[sid]
        return float(r["basics"] or 0), float(r["more"] or 0), r["status"]

    full = (SQUARE + TOTAL, SCALE, "graded")
    assert points("reference") == full and points("zipped_reference") == full
    assert points("copy_a") == full and points("copy_b") == full
    assert points("kit") == (0, 0, "graded")
    assert points("square_twice") == (0, SCALE, "graded")  # total uses square: both fail
    assert points("total_mean") == (SQUARE, SCALE, "graded")
    assert points("scale_adds") == (SQUARE + TOTAL, 0, "graded")
    assert points("hangs") == (0, SCALE, "graded")  # its calls time out; the rest is graded
    assert points("crashes_at_import") == (0, SCALE, "graded")  # work.py dies at import, more.py is fine
    assert points("empty") == (0, 0, "graded")
    assert book["corrupt"]["status"] == "error" and "not a readable zip" in book["corrupt"]["error"]
    assert book["notes"]["status"] == "error" and "not a folder or a .zip" in book["notes"]["error"]
    for sid, r in book.items():
        if sid != "Points Possible" and r["status"] == "graded":
            assert float(r["total"]) == float(r["basics"]) + float(r["more"]) and r["max"] == "10"
            assert r["grader_version"] and r["device"] == "cpu" and len(r["digest"]) == 64
            assert (out / sid / "results.json").is_file() and (out / sid / "summary.md").is_file()
    hang = json.loads((out / "hangs" / "results.json").read_text())
    assert any("time" in t["output"].lower() for t in hang["tests"] if t["status"] == "failed")


@pytest.mark.slow
def test_canvas_layout_and_similarity(graded):
    out, _ = graded
    canvas = list(csv.reader(open(out / "canvas.csv", newline="")))
    assert canvas[0][:5] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
    assert canvas[1][0] == "Points Possible" and canvas[1][5] == "10"
    by_id = {r[2]: r[5] for r in canvas[2:]}
    assert by_id["reference"] == "10" and by_id["total_mean"] == str(SQUARE + SCALE)
    # an error has no row: Canvas counts a blank cell over a score it has as a change, and clears it
    assert "corrupt" not in by_id
    review = {r[1]: r[0] for r in csv.reader(open(out / "canvas-review.csv", newline=""))}
    assert review["corrupt"] == "error"
    pairs = list(csv.DictReader(open(out / "similarity.csv", newline="")))
    assert [(p["student_a"], p["student_b"]) for p in pairs] == [("copy_a", "copy_b")]
    assert "square" in pairs[0]["functions"] and "total" in pairs[0]["functions"]


@pytest.mark.slow
def test_rerun_skips_everything_and_force_regrades(graded, course, klass):
    out, _ = graded
    before = comparable(out)
    runs = {p.parent.name: json.loads(p.read_text())["run"] for p in out.glob("*/batch.json")}
    again = run_batch(options(course, klass, out), stream=io.StringIO())
    assert again.graded == 0 and again.skipped == 13
    assert {p.parent.name: json.loads(p.read_text())["run"] for p in out.glob("*/batch.json")} == runs
    forced = run_batch(options(course, klass, out, force=True, only=["total_mean"]), stream=io.StringIO())
    assert forced.graded == 1
    after = {p.parent.name: json.loads(p.read_text())["run"] for p in out.glob("*/batch.json")}
    assert after["total_mean"] == forced.run_id and all(after[k] == runs[k] for k in runs if k != "total_mean")
    assert comparable(out) == before


@pytest.mark.slow
def test_a_changed_submission_is_regraded(course, tmp_path):
    klass = tmp_path / "class"
    write_submission(klass / "alice", VARIANTS["scale_adds"])
    out = tmp_path / "out"
    assert run_batch(options(course, klass, out, similarity=False), stream=io.StringIO()).graded == 1
    assert rows(out)["alice"]["more"] == "0"
    write_submission(klass / "alice", {})  # alice fixes scale
    assert run_batch(options(course, klass, out, similarity=False), stream=io.StringIO()).graded == 1
    assert rows(out)["alice"]["more"] == str(SCALE)


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_gradebook(graded, course, klass, tmp_path):
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "grader",
        "--course",
        str(course),
        "batch",
        str(klass),
        "-a",
        "mini",
        "--out",
        str(out),
        "--jobs",
        "1",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "CI": "1"})
    deadline = time.monotonic() + 300
    while len(list(out.glob("*/batch.json"))) < 5 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(list(out.glob("*/batch.json")))
    assert 5 <= done < 13, "the run should have been killed in the middle"
    pending = [r for r in rows(out).values() if r["status"] == "pending"]
    assert len(pending) == 13 - done  # the gradebook was current when it was killed
    resumed = run_batch(options(course, klass, out), stream=io.StringIO())
    assert resumed.graded == 13 - done and resumed.skipped == done
    assert comparable(out) == comparable(graded[0])


# -- Dask -----------------------------------------------------------------------------------------------------------


@pytest.fixture
def dask_cluster(tmp_path):
    pytest.importorskip("distributed")
    dask = Path(sys.executable).parent / "dask"
    if not dask.exists():
        pytest.skip("no `dask` command in this environment")
    info = tmp_path / "scheduler.json"
    procs = [
        subprocess.Popen(
            [
                str(dask),
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(info),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        deadline = time.monotonic() + 120
        while not info.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        for _ in range(2):
            procs.append(
                subprocess.Popen(
                    [
                        str(dask),
                        "worker",
                        "--scheduler-file",
                        str(info),
                        "--nthreads",
                        "1",
                        "--no-dashboard",
                        "--host",
                        "127.0.0.1",
                    ],
                    cwd=tmp_path,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        from distributed import Client

        with Client(scheduler_file=str(info), timeout="60s") as client:
            client.wait_for_workers(2, timeout=120)
            address = client.scheduler_info()["address"]
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.mark.slow
def test_dask_cluster_gives_the_same_gradebook(graded, course, klass, dask_cluster, tmp_path):
    out = tmp_path / "out"
    summary = run_batch(options(course, klass, out, scheduler=dask_cluster), stream=io.StringIO())
    assert summary.graded == 12 and "Dask" in summary.where and "2 worker" in summary.where
    assert comparable(out) == comparable(graded[0])
    records = [json.loads(p.read_text()) for p in out.glob("*/batch.json")]
    assert all(r["host"] for r in records if r["status"] == "graded")  # each says where it was graded


# -- isolation, timeouts, inputs ------------------------------------------------------------------------------------

POLLUTER = """import os, subprocess, sys, tempfile


def square(x):
    for place in ("/tmp", tempfile.gettempdir(), os.path.expanduser("~"), os.getcwd()):
        try:
            with open(os.path.join(place, "mini_marker"), "w") as f:
                f.write("left behind")
        except OSError:
            pass
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)  # mini-batch-leftover"],
                     start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return x * x


def total(x):
    return square(x).sum()
"""

VICTIM = """import os, tempfile


def _polluted():
    places = ("/tmp", tempfile.gettempdir(), os.path.expanduser("~"), os.getcwd())
    return any(os.path.exists(os.path.join(p, "mini_marker")) for p in places)


def square(x):
    return x * x + 1 if _polluted() else x * x


def total(x):
    return square(x).sum()
"""


def allow_imports(course: Path, modules: list[str]) -> Path:
    """The tiny course, its manifest allowing `modules` too ([rules] allowed_imports): the static scan refuses os,
    subprocess, time, ... in a graded file, and these tests plant such code to test the sandbox beneath it."""
    manifest = course / "assignments" / "mini" / "assignment.toml"
    manifest.write_text(manifest.read_text() + f"\n[rules]\nallowed_imports = {json.dumps(modules)}\n")
    return course


@pytest.mark.slow
def test_what_one_submission_leaves_cannot_reach_the_next(tmp_path):
    if not detect_isolation().strong:
        pytest.skip("needs an OS sandbox (bubblewrap, or root): without one, student code shares this machine's /tmp")
    course = allow_imports(make_course(tmp_path / "course"), ["os", "subprocess", "sys", "tempfile"])
    klass = tmp_path / "class"
    write_submission(klass / "a_polluter", {"work.py": POLLUTER})
    write_submission(klass / "b_victim", {"work.py": VICTIM})
    out = tmp_path / "out"
    run_batch(options(course, klass, out, jobs=1, similarity=False), stream=io.StringIO())  # one after the other
    book = rows(out)
    # the polluter's processes are refused by the worker's walls (its file loses its points: it tried to start
    # them); what it could still leave behind must not reach the victim
    assert book["a_polluter"]["status"] == "graded" and book["b_victim"]["total"] == "10"
    assert not Path("/tmp/mini_marker").exists()
    left = [p for p in Path("/proc").glob("[0-9]*") if b"mini-batch-leftover" in _cmdline(p)]
    assert not left, "a process a submission started outlived its grading"


def _cmdline(p: Path) -> bytes:
    try:
        return (p / "cmdline").read_bytes()
    except OSError:
        return b""


@pytest.mark.slow
def test_a_submission_over_the_time_limit_is_a_timeout_row(tmp_path):
    course = make_course(tmp_path / "course")
    manifest = course / "assignments" / "mini" / "assignment.toml"
    manifest.write_text(manifest.read_text().replace("call_timeout = 4", "call_timeout = 120"))
    allow_imports(course, ["time"])  # the submission sleeps at import: it must reach the sandbox
    klass = tmp_path / "class"
    write_submission(klass / "stuck", {"work.py": "import time\ntime.sleep(600)\n" + REFERENCE["work.py"]})
    out = tmp_path / "out"
    summary = run_batch(options(course, klass, out, limit=8, similarity=False), stream=io.StringIO())
    row = rows(out)["stuck"]
    assert summary.failed == 1 and row["status"] == "timeout" and "8 s" in row["error"] and row["total"] == ""
    assert not [p for p in Path("/proc").glob("[0-9]*") if str(klass / "stuck").encode() in _cmdline(p)]


@pytest.mark.slow
def test_gradescope_export(course, tmp_path):
    export = tmp_path / "assignment_1_export"
    write_submission(export / "submission_101", {})
    write_submission(export / "submission_102", VARIANTS["square_twice"])
    (export / "submission_metadata.yml").write_text("""\
submission_101:
  :submitters:
  - :name: Ada Lovelace
    :sid: '1001'
    :email: ada@example.edu
  :created_at: 2025-01-01 10:00:00 -0800
submission_102:
  :submitters:
  - :name: Alan Turing
    :sid: '1002'
    :email: alan@example.edu
  - :name: =HYPERLINK("http://example.com")
    :sid: '1003'
    :email: grace@example.edu
submission_103:
  :submitters:
  - :name: Missing Person
    :sid: '1004'
    :email: missing@example.edu
""")
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(export.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(tmp_path).as_posix())
    out = tmp_path / "out"
    run_batch(options(course, archive, out, similarity=False), stream=io.StringIO())
    book = rows(out)
    assert book["1001"]["name"] == "Ada Lovelace" and book["1001"]["email"] == "ada@example.edu"
    assert book["1001"]["total"] == "10"
    assert book["1002"]["total"] == book["1003"]["total"] == str(SCALE)  # a group: each member gets the grade
    assert book["1003"]["name"].startswith("'=")  # never read as a formula
    assert book["1004"]["status"] == "error" and "not in the export" in book["1004"]["error"]


def test_github_classroom_folders(tmp_path):
    for user in ("alice", "bob-smith"):
        repo = tmp_path / "class" / f"mini-assignment-{user}"
        write_submission(repo, {})
        (repo / ".git").mkdir()
    subs = batch.discover(tmp_path / "class", tmp_path / "state")
    assert [s.id for s in subs] == ["alice", "bob-smith"]
    assert all(s.path and s.path.is_dir() and not s.error for s in subs)


def test_odd_student_ids_get_safe_unique_folders(tmp_path):
    subs = [batch.Submission([batch.Student(i)], None) for i in ("../x", "a b", "a_b", "class.html", "")]
    batch.assign_slugs(subs)
    slugs = [s.slug for s in subs]
    assert len(set(slugs)) == 5 and all("/" not in s and s not in ("", ".", "..", "class.html") for s in slugs)


def test_two_runs_never_write_the_same_folder(course, tmp_path):
    klass = write_submission(tmp_path / "class" / "alice", {}).parent
    held = batch.Lock(tmp_path / "out" / batch.STATE)
    try:
        with pytest.raises(GraderError, match="another `grader batch` run"):
            run_batch(options(course, klass, tmp_path / "out"), stream=io.StringIO())
    finally:
        held.release()


def test_report_flag_is_passed_to_grade(course, tmp_path):
    o = options(course, tmp_path, tmp_path / "out", report=True, hidden=True)
    args = batch.grade_args(o)
    assert "--report" in args and "--hidden" in args


# -- the class report in a browser -----------------------------------------------------------------------------------

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs headless Chromium")
def test_class_report_opens_in_chromium(graded, tmp_path):
    out, _ = graded
    dom = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={tmp_path}",
            "--dump-dom",
            (out / "class.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    from html.parser import HTMLParser

    class Page(HTMLParser):
        def __init__(self):
            super().__init__()
            self.stack, self.svg_in, self.rows, self.cells = [], set(), [], None

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag == "svg" and self.stack:
                self.svg_in.add(self.stack[-1])
            if tag in ("figure", "table"):
                self.stack.append(a.get("id"))
            if tag == "tr" and self.stack and self.stack[-1] == "failures":
                self.cells = []
            if tag == "td" and self.cells is not None:
                self.cells.append("")

        def handle_endtag(self, tag):
            if tag in ("figure", "table") and self.stack:
                self.stack.pop()
            if tag == "tr" and self.cells:
                self.rows.append(self.cells)
                self.cells = None

        def handle_data(self, data):
            if self.cells:
                self.cells[-1] += data

    page = Page()
    page.feed(dom)
    assert {"histogram", "parts"} <= page.svg_in
    rates = [int(r[3].split("%")[0]) for r in page.rows]
    assert len(page.rows) == 3 and rates == sorted(rates, reverse=True)
    scale = next(r for r in page.rows if "mini.scale" in r[0])
    assert "Likely bug: you add k instead of multiplying by it" in scale[5]
    # each check's wall time over the class, from results.json's extra_data.checks
    assert all(re.fullmatch(r"\d+\.\d, \d+\.\d(out of time: \d+)?", r[4]) for r in page.rows), [r[4] for r in page.rows]
    assert "hangs/summary.md" in dom


# -- the real course, once --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_real_reference_and_kit_on_a1(tmp_path):
    klass = tmp_path / "class"
    files = ["a1_knn/pytorch101.py", "a1_knn/knn.py"]
    for f in files:
        text = (ROOT / f).read_text()
        for who, body in (("reference", text), ("kit", stub_source(text, f)[0])):
            (klass / who / f).parent.mkdir(parents=True, exist_ok=True)
            (klass / who / f).write_text(body)
    out = tmp_path / "out"
    o = Options(input=klass, assignment="a1_knn", out=out, kit=ROOT, jobs=2)
    run_batch(o, stream=io.StringIO())
    book = rows(out)
    assert book["reference"]["status"] == "graded" and book["reference"]["total"] == book["reference"]["max"]
    assert book["kit"]["status"] == "graded" and float(book["kit"]["total"]) == 0
    assert list(book["Points Possible"])[3:5] == ["warmup", "knn"]


# -- the student kit's CI ------------------------------------------------------------------------------------------


def test_ci_annotations_point_at_the_file_and_line(course, tmp_path, monkeypatch, capsys):
    from grader.reports import annotate

    repo = write_submission(tmp_path / "repo", VARIANTS["scale_adds"])
    tests = [
        {"name": "square squares every entry [mini.square]", "status": "passed", "score": 3, "max_score": 3},
        {
            "name": "scale multiplies by k [mini.scale]",
            "status": "failed",
            "score": 0,
            "max_score": 4,
            "output": "scale(x, 3): wrong values.\nLikely bug: you add k instead of multiplying by it.",
        },
        {
            "name": "total sums the squares [mini.total]",
            "status": "failed",
            "score": 0,
            "max_score": 3,
            "output": "total uses torch.cdist (line 9); total may not use it, 100% of, the class",
        },
    ]
    hit = {"rule": "forbidden", "name": "torch.cdist", "file": "mini_pkg/work.py", "line": 9, "function": "total"}
    data = {"assignment": "mini", "checks": [{"id": "mini.total", "rule_hits": [hit]}]}
    results = {"tests": tests, "extra_data": data}
    lines = annotate.annotations(results, course, repo)
    def_line = (repo / "mini_pkg/more.py").read_text().splitlines().index("def scale(x, k):") + 1
    assert lines[0].startswith(
        f"::error file=mini_pkg/more.py,line={def_line},title=scale multiplies by k (mini.scale)::"
    )
    assert "%0ALikely bug: you add k" in lines[0]  # one line: newlines encoded
    assert lines[1].startswith("::error file=mini_pkg/work.py,line=9,")  # the line of the rule hit (the data)
    assert "100%25 of" in lines[1]
    many = {
        "tests": [dict(tests[1], name=f"t{i} [mini.scale]") for i in range(25)],
        "extra_data": {"assignment": "mini"},
    }
    assert len(annotate.annotations(many, course, repo)) == annotate.MAX_ANNOTATIONS
    out = tmp_path / "grader-results"
    out.mkdir()
    (out / "results.json").write_text(json.dumps(results))
    github_output = tmp_path / "github_output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(github_output))
    monkeypatch.chdir(repo)
    monkeypatch.setattr(annotate.manifests, "course_root", lambda: course)
    assert annotate.main([str(out)]) == 0
    assert "Points 3/10" in capsys.readouterr().out
    import base64

    key, _, value = github_output.read_text().strip().partition("=")
    report = json.loads(base64.b64decode(value))
    assert key == "result" and report["max_score"] == 10 and report["status"] == "fail"
    assert [t["status"] for t in report["tests"]] == ["pass", "fail", "fail"]


# -- similarity (no grading) -----------------------------------------------------------------------------------------

DIFFERENT = """import torch


def square(x):
    result = []
    for row in x.reshape(-1).tolist():
        result.append(row ** 2)
    return torch.tensor(result, dtype=x.dtype).reshape(x.shape)


def total(x):
    s = 0.0
    for value in x.reshape(-1).tolist():
        s += value * value
    return torch.tensor(s, dtype=x.dtype)
"""


def test_similarity_flags_renamed_copies_only(course):
    from grader.classroom.similarity import find_similar
    from grader.course import manifest as manifests

    m = manifests.load("mini", course)

    def sub(work):
        return {"mini_pkg/work.py": work, "mini_pkg/more.py": REFERENCE["more.py"]}

    sources = {
        "a": sub(COPIED),
        "b": sub(COPIED_AGAIN),
        "c": sub(DIFFERENT),
        "d": sub(REFERENCE["work.py"]),
        "e": sub(REFERENCE["work.py"]),
        "f": sub(VARIANTS["square_twice"]["work.py"]),
    }
    pairs = find_similar(sources, m, course)
    assert [(p.a, p.b) for p in pairs] == [("a", "b")]  # d, e, f: the obvious code, alike by necessity
    assert pairs[0].score == 1.0 and {f for f, _ in pairs[0].functions} == {"square", "total"}


def test_a_class_archive_cannot_write_outside_its_folder(tmp_path):
    archive = tmp_path / "class.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("alice/mini_pkg/work.py", "x = 1\n")
        zf.writestr("../escaped.py", "x = 1\n")
    with pytest.raises(GraderError, match="outside the archive"):
        batch.discover(archive, tmp_path / "out" / ".batch")
    assert not (tmp_path / "out" / "escaped.py").exists() and not (tmp_path / "escaped.py").exists()
