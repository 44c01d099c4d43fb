"""Review attacks on the notebook report (grader.notebooks.report) and batch grading (grader.classroom: batch,
classreport, similarity; grader.reports.annotate): hostile student input, each test asserting the SAFE behaviour
(so a failing test is a hole). Everything here is fast: the report is rendered from hand-made runs (no kernel),
the batch is driven through discover/prepare/save_result/the table writers, and only one test starts Chromium."""

from __future__ import annotations

import base64
import csv
import http.server
import io
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import zipfile
from contextlib import contextmanager
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar

import nbformat
import pytest

from bench.batch import make_course, write_submission
from grader.classroom import batch
from grader.errors import GraderError
from grader.judge.results import CheckResult, GradeResult, PartResult
from grader.notebooks.answers import Answer
from grader.notebooks.browser import chromium
from grader.notebooks.execute import NotebookRun
from grader.notebooks.report import build_notebook, render_html

# -- helpers ------------------------------------------------------------------------------------------------------


def _rm_deep(path: Path) -> None:
    """Remove a tree too deep for shutil.rmtree (which recurses once per level on Python 3.11)."""
    subprocess.run(["rm", "-rf", "--", str(path)], check=False)


@contextmanager
def deadline(seconds: int):
    """Fail (instead of hanging the suite) when the block takes longer than `seconds`."""

    def boom(signum, frame):
        raise TimeoutError(f"took more than {seconds} s (a hang)")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _report(
    md_cells=(), outputs=(), answer="my answer", feedback="wrong", run_message="", attachments=None, ename=None
) -> str:
    """report.html for one notebook holding `md_cells` and a code cell with `outputs`, one answered question."""
    nb = nbformat.v4.new_notebook()
    for i, s in enumerate(md_cells):
        cell = nbformat.v4.new_markdown_cell(s)
        if attachments and i == 0:
            cell.attachments = attachments
        nb.cells.append(cell)
    code = nbformat.v4.new_code_cell("print(1)")
    code.outputs = list(outputs)
    nb.cells.append(code)
    run = NotebookRun("notebooks/a.ipynb", "ran", run_message, nb=nb)
    if ename:
        run.cells[len(nb.cells) - 1] = f"raised {ename}"
    check = CheckResult("c1", "adds", "add", "p", "1", 0, 1, "failed", "visible", False, feedback, 0, 0.1)
    result = GradeResult(
        "toy", "Toy", 0, 1, [check], [PartResult("p", "P", 0, 1)], 0.1, "digits", "cpu", False, "s", "d"
    )
    answers = [Answer("q1", "notebooks/a.ipynb", 1, "Why?", answer, "answered", "", 0)]
    return render_html(build_notebook(result, None, [run], answers, meta={"Submission": "s"}))


class _Audit(HTMLParser):
    """What in a page could run or load: script-ish elements, event handlers, non-data URLs, meta refresh."""

    LOADERS: ClassVar[set[str]] = {
        "src",
        "href",
        "srcset",
        "action",
        "formaction",
        "data",
        "poster",
        "background",
        "ping",
        "xlink:href",
    }

    def __init__(self) -> None:
        super().__init__()
        self.bad: list[str] = []
        self.ids: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "iframe", "object", "embed", "form", "base", "frame", "link", "portal"):
            self.bad.append(tag)
        if tag == "meta" and any(k == "http-equiv" and (v or "").lower() == "refresh" for k, v in attrs):
            self.bad.append("meta refresh")
        for k, v in attrs:
            v = (v or "").strip()
            if k.startswith("on"):
                self.bad.append(f"{tag} {k}")
            if k == "id":
                self.ids.append(v)
            if k == "style" and re.search(r"url\s*\(|@import|expression", v, re.I):
                self.bad.append(f"{tag} style {v[:40]}")
            if k in self.LOADERS and v and not (tag == "a" and k == "href") and not v.startswith("#"):
                if not re.match(r"data:image/(png|jpeg|gif);base64,", v):
                    self.bad.append(f"{tag} {k}={v[:60]}")
            relative = ":" not in v.split("/", 1)[0] and not v.startswith("//")
            if tag == "a" and k == "href" and not relative and not re.match(r"(https?:|mailto:|#)", v, re.I):
                self.bad.append(f"a href={v[:60]}")


def audit(page: str) -> _Audit:
    a = _Audit()
    a.feed(page)
    # our own CSP meta and CSS are fine; nothing else may be
    a.bad = [b for b in a.bad if b != "meta refresh" or 'http-equiv="refresh' in page.lower()]
    return a


def _csp_first(page: str) -> bool:
    head = page[page.lower().find("<head>") :]
    first = re.search(r"<(?!/)[a-z]+[^>]*>", head[len("<head>") :], re.I)
    return bool(first and "Content-Security-Policy" in first.group(0))


# -- 1. the notebook report: script, fetches, CSP -------------------------------------------------------------

HOSTILE_MARKDOWN = [
    "<script>document.title='pwned'</script>",
    "<img src=x onerror=alert(1)>",
    "[a](javascript:alert(1))",
    "[a](JaVaScRiPt:alert(1))",
    "[a](&#106;avascript:alert(1))",
    '<a href="&#x6A;avascript:alert(1)">x</a>',
    "[a](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "![x](http://127.0.0.1:9/pixel.png)",
    '<svg><script>alert(1)</script><image href="http://127.0.0.1:9/x"/></svg>',
    "<svg><style><img src=x onerror=alert(1)></style></svg>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    '<meta http-equiv="refresh" content="0;url=http://127.0.0.1:9/">',
    '<base href="http://127.0.0.1:9/">',
    '<iframe src="http://127.0.0.1:9/"></iframe><iframe srcdoc="<script>alert(1)</script>"></iframe>',
    '<form action="http://127.0.0.1:9/"><input name=a><button formaction="http://x">go</button></form>',
    '<div style="background:url(http://127.0.0.1:9/x)">s</div>',
    "<style>@import 'http://127.0.0.1:9/x.css'; input[value^=a]{background:url(http://127.0.0.1:9/a)}</style>",
    '<link rel="stylesheet" href="http://127.0.0.1:9/x.css">',
    '<object data="http://127.0.0.1:9/x"></object><embed src="http://127.0.0.1:9/x">',
    '<img src="data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+">',
    '<img srcset="http://127.0.0.1:9/x 1x" src="data:image/png;base64,AAAA">',
    '<video poster="http://127.0.0.1:9/p"><source src="http://127.0.0.1:9/v"></video>',
    "<details open ontoggle=alert(1)>x</details>",
    "<!--><img src=x onerror=alert(1)>-->",
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    "$$</div><img src=x onerror=alert(1)>$$",
    "$\\href{javascript:alert(1)}{x}$",
    '<a href="http://127.0.0.1:9/" ping="http://127.0.0.1:9/ping">p</a>',
    "<template><img src=x onerror=alert(1)></template><textarea><img src=x onerror=alert(1)></textarea>",
    "<xmp><img src=x onerror=alert(1)></xmp><plaintext><img src=x onerror=alert(1)>",
]


@pytest.mark.parametrize("payload", HOSTILE_MARKDOWN)
def test_markdown_and_answers_cannot_run_script_or_load_anything(payload):
    page = _report(md_cells=[payload], answer=payload)
    a = audit(page)
    assert a.bad == [], a.bad
    assert _csp_first(page)


@pytest.mark.parametrize("payload", HOSTILE_MARKDOWN[:12])
def test_html_and_markdown_outputs_cannot_run_script_or_load_anything(payload):
    outputs = [
        nbformat.v4.new_output("display_data", data={"text/html": payload, "text/plain": "x"}),
        nbformat.v4.new_output("display_data", data={"text/markdown": payload}),
        nbformat.v4.new_output("display_data", data={"image/svg+xml": payload, "application/javascript": "x()"}),
        nbformat.v4.new_output("stream", name="stdout", text=payload),
        nbformat.v4.new_output("error", ename=payload, evalue=payload, traceback=[payload]),
    ]
    a = audit(_report(outputs=outputs))
    assert a.bad == [], a.bad


def test_feedback_and_messages_are_text_not_html():
    evil = "<img src=x onerror=alert(1)></pre><script>alert(2)</script>"
    page = _report(feedback=evil, run_message=evil)
    assert audit(page).bad == []


def test_an_answer_with_a_pasted_image_still_gives_a_report():
    """Pasting a figure into an inline question's answer is the most ordinary thing a student does. The answer
    is copied into the 'Answers' section as a new cell without the attachment, and nbconvert raises
    InvalidNotebook ('missing attachment'), so no report at all is written for that student (attach() swallows
    it). A hostile student uses the same to suppress their own report (one `![](attachment:x)` anywhere, or an
    exception class named so)."""
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()
    answer = "Here is my plot:\n\n![image.png](attachment:image.png)"
    page = _report(md_cells=[answer], attachments={"image.png": {"image/png": png}}, answer=answer)
    assert "Here is my plot" in page


def test_a_reference_to_a_missing_or_svg_attachment_does_not_kill_the_report():
    svg = base64.b64encode(b"<svg xmlns='http://www.w3.org/2000/svg'/>").decode()
    page = _report(
        md_cells=["![f](attachment:fig.svg)\n\n![g](attachment:gone.png)"],
        attachments={"fig.svg": {"image/svg+xml": svg}},
    )
    assert "fig.svg" not in page or audit(page).bad == []


def test_markdown_cannot_embed_files_from_the_graders_working_folder(tmp_path, monkeypatch):
    """nbconvert's embed_images reads any local path a Markdown image names (relative to the working folder,
    which is '' here, so the cwd), through symbolic links, and inlines it as base64. A TA who runs
    `grader grade . --report` inside a student's clone (which can hold a link `leak.png -> ~/.ssh/id_rsa`, or
    `-> /dev/zero` to exhaust memory) gets the file in report.html/report.ipynb."""
    secret = tmp_path / "outside" / "id_rsa"
    secret.parent.mkdir()
    secret.write_text("TA-PRIVATE-KEY-4242")
    cwd = tmp_path / "clone"
    cwd.mkdir()
    (cwd / "leak.png").symlink_to(secret)
    shutil.copy(secret, cwd / "copy.png")
    monkeypatch.chdir(cwd)
    page = _report(md_cells=["![a](leak.png) ![b](copy.png)", '<img src="leak.png">'], answer="![c](leak.png)")
    encoded = base64.b64encode(b"TA-PRIVATE-KEY-4242").decode()[:16]
    assert encoded not in page


def test_student_html_cannot_take_over_the_reports_own_anchors():
    """The index links to #cell-id=dlcv-q-<id> and 'Cells to look at' to #cell-id=nbK-cN; bleach keeps any id
    matching [A-Za-z0-9_:=.-], so a student's answer (which comes earlier in the page) can carry the same id and
    the TA's link to a flagged cell or to a question jumps into the student's text instead."""
    hijack = '<span id="cell-id=nb1-c2">look here instead</span> <span id="cell-id=dlcv-q-q1">x</span>'
    page = _report(md_cells=["fine"], answer=hijack, ename="ZeroDivisionError")
    ids = audit(page).ids
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    assert dupes == [], dupes


def test_student_text_cannot_forge_the_reports_own_cell_tags():
    """Cell tags starting dlcv- are stripped from student cells; the same classes through HTML should be too
    (they style answers as the grader's own, and force PDF page breaks)."""
    page = _report(md_cells=['<div class="celltag_dlcv-answer jp-Cell">forged answer box</div>'])
    opening = page.split("forged answer box")[0].rsplit("<", 1)[-1]
    assert "celltag_dlcv" not in opening, opening


@pytest.mark.skipif(chromium() is None, reason="Chromium is not installed")
def test_chromium_printing_the_report_fetches_nothing(tmp_path):
    from grader.notebooks.browser import print_pdf

    hits: list[str] = []

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        payloads = [p.replace("127.0.0.1:9", f"127.0.0.1:{port}") for p in HOSTILE_MARKDOWN]
        (tmp_path / "secret.png").write_bytes(b"x")
        page = _report(md_cells=payloads, answer="\n\n".join(payloads))
        html_path = tmp_path / "report.html"
        html_path.write_text(page)
        with deadline(150):
            why = print_pdf(html_path, tmp_path / "report.pdf", timeout=120)
        assert why == "" and (tmp_path / "report.pdf").stat().st_size > 0
        assert hits == []
    finally:
        server.shutdown()


# -- 2. batch: inputs, paths, YAML ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    return make_course(tmp_path_factory.mktemp("course"))


def _zip_folder(folder: Path, dest: Path) -> Path:
    with zipfile.ZipFile(dest, "w") as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(folder).as_posix())
    shutil.rmtree(folder)
    return dest


def test_one_students_folder_cannot_pose_as_a_gradescope_export_and_take_over_the_class(tmp_path):
    """A folder of zips with one student who handed in a folder: _find_metadata looks into the only top-level
    *folder*, so carol's own submission_metadata.yml turns the whole class into her export: alice and bob's zips
    vanish from the gradebook and carol decides what is graded as bob."""
    klass = tmp_path / "class"
    _zip_folder(write_submission(klass / "alice", {}), klass / "alice.zip")
    _zip_folder(write_submission(klass / "bob", {}), klass / "bob.zip")
    carol = write_submission(klass / "carol", {})
    write_submission(carol / "submission_1", {"work.py": "def square(x):\n    return 0\n"})
    (carol / "submission_metadata.yml").write_text(
        "submission_1:\n  :submitters:\n  - :name: Bob\n    :sid: bob\n    :email: bob@example.edu\n"
    )
    subs = batch.discover(klass, tmp_path / "state")
    assert sorted(s.id for s in subs) == ["alice", "bob", "carol"]
    bob = next(s for s in subs if s.id == "bob")
    assert bob.path == klass / "bob.zip"


def test_a_single_students_folder_is_not_read_as_an_export(tmp_path):
    klass = tmp_path / "class"
    carol = write_submission(klass / "carol", {})
    write_submission(carol / "submission_1", {})
    (carol / "submission_metadata.yml").write_text("submission_1:\n  :submitters:\n  - :sid: dave\n")
    (klass / "notes.txt").write_text("a stray file")  # not the shape of a Gradescope export
    subs = batch.discover(klass, tmp_path / "state")
    assert [s.id for s in subs if s.path is not None] == ["carol"]


def _export(tmp_path: Path, yml: str, folders=("submission_1",)) -> Path:
    export = tmp_path / "export"
    for f in folders:
        write_submission(export / f, {})
    (export / "submission_metadata.yml").write_text(yml)
    return export


def test_gradescope_yaml_is_never_loaded_unsafely(tmp_path):
    marker = tmp_path / "pwned"
    export = _export(tmp_path, f"submission_1: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(GraderError):
        batch.discover(export, tmp_path / "state")
    assert not marker.exists()


def test_gradescope_yaml_aliases_cannot_blow_up_a_student_id(tmp_path):
    """Billion laughs: safe_load shares aliased nodes, but str() of a non-string sid/name expands them all.
    Five levels of ten (kept small here) already make a 'student id' of half a megabyte; nine levels exhaust
    memory. A sid or name that is not a string should be refused (or cut)."""
    levels = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, 6):
        levels.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    yml = "\n".join(levels) + "\nsubmission_1:\n  :submitters:\n  - :sid: *a5\n    :name: *a5\n"
    export = _export(tmp_path, yml)
    with deadline(60):
        try:
            subs = batch.discover(export, tmp_path / "state")
        except GraderError:
            return
    assert all(len(st.id) <= 1000 and len(st.name) <= 1000 for s in subs for st in s.students)


def test_gradescope_folder_names_that_are_not_plain_names_become_error_rows(tmp_path):
    long = "s" * 300
    export = _export(
        tmp_path,
        "\n".join(
            [
                "submission_1:\n  :submitters:\n  - :sid: ok",
                "../../etc:\n  :submitters:\n  - :sid: up",
                "/etc:\n  :submitters:\n  - :sid: abs",
                '"nul\\0byte":\n  :submitters:\n  - :sid: nul',
                f"{long}:\n  :submitters:\n  - :sid: long",
                "..:\n  :submitters:\n  - :sid: dots",
            ]
        )
        + "\n",
    )
    subs = batch.discover(export, tmp_path / "state")  # no crash, whatever the names
    by = {s.id: s for s in subs}
    assert by["ok"].path is not None and not by["ok"].error
    for sid in ("up", "abs", "nul", "long", "dots"):
        assert by[sid].path is None and by[sid].error


def test_hostile_student_ids_stay_inside_the_output_folder(course, tmp_path):
    ids = ["../../escape", "/etc/passwd", "a/../../b", "nul\0id", "x" * 5000, ".batch", "CLASS.HTML", "..", "\n"]
    subs = [batch.Submission([batch.Student(i)], None, error="no") for i in ids]
    batch.assign_slugs(subs)
    out = tmp_path / "out"
    out.mkdir()
    for s in subs:
        s.key = "k"
        batch.save_result(out, s, {"status": "error", "error": "no"}, "run")
    made = sorted(p.name for p in out.iterdir())
    assert len(made) == len(ids) and not (tmp_path / "escape").exists()
    assert all(len(n) <= 100 and "/" not in n and n.lower() not in (".batch", "class.html") for n in made)


def test_files_a_grading_returns_cannot_be_written_outside_the_students_folder(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "bob").mkdir()
    (out / "bob" / "results.json").write_text('{"tests": [{"score": 10, "max_score": 10}]}')
    sub = batch.Submission([batch.Student("mallory")], None, slug="mallory", key="k")
    files = {
        "../bob/results.json": b'{"tests": []}',
        "/tmp/abs-escape": b"x",
        "sub/../../bob/results.json": b"x",
        "results.json": json.dumps({"tests": [{"score": 0, "max_score": 10}]}).encode(),
    }
    batch.save_result(out, sub, {"status": "graded", "files": files}, "run")
    assert json.loads((out / "bob" / "results.json").read_text())["tests"][0]["score"] == 10
    assert not Path("/tmp/abs-escape").exists()


def test_class_archive_entries_cannot_leave_the_state_folder_or_plant_links(tmp_path):
    archive = tmp_path / "class.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("alice/mini_pkg/work.py", "x = 1\n")
        link = zipfile.ZipInfo("bob/mini_pkg/work.py")
        link.external_attr = (0o120777) << 16
        zf.writestr(link, "/etc/passwd")
        fifo = zipfile.ZipInfo("carol/fifo")
        fifo.external_attr = (0o010644) << 16
        zf.writestr(fifo, "")
    dest = tmp_path / "state" / "input"
    dest.mkdir(parents=True)
    batch.unpack_class(archive, dest)
    assert not (dest / "bob" / "mini_pkg" / "work.py").is_symlink()
    assert not (dest / "carol" / "fifo").exists()
    for bad in ("../evil.txt", "/abs/evil.txt", "a/../../evil.txt"):
        evil = tmp_path / "evil.zip"
        with zipfile.ZipFile(evil, "w") as zf:
            zf.writestr(bad, "x")
        with pytest.raises(GraderError):
            batch.unpack_class(evil, dest)
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "state" / "evil.txt").exists()


def test_a_class_archive_entry_nested_deeply_does_not_crash_the_batch(tmp_path):
    archive = tmp_path / "class.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("alice/mini_pkg/work.py", "x = 1\n")
        zf.writestr("mallory/" + "d/" * 1500 + "x.py", "x = 1\n")
    dest = tmp_path / "state" / "input"
    dest.mkdir(parents=True)
    try:
        try:
            batch.unpack_class(archive, dest)
        except GraderError:
            return  # refusing the archive with a reason is fine; a RecursionError is not
        assert (dest / "alice" / "mini_pkg" / "work.py").is_file()
    finally:
        _rm_deep(dest)


def test_a_class_archive_zip_bomb_is_refused(tmp_path):
    """unpack_class copied each entry with no size, count or ratio limit (the intake's limits apply only to
    each student's own zip, later). 60 MB of zeros here (compressed 1000x); the same entry at 50 GB fills the
    grading machine's disk before any student is graded."""
    archive = tmp_path / "class.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("alice/mini_pkg/work.py", "x = 1\n")
        with zf.open("mallory/bomb.bin", "w", force_zip64=True) as f:
            chunk = b"\0" * (1 << 20)
            for _ in range(60):
                f.write(chunk)
    dest = tmp_path / "state" / "input"
    dest.mkdir(parents=True)
    try:
        batch.unpack_class(archive, dest)
    except GraderError:
        return
    bomb = dest / "mallory" / "bomb.bin"
    assert not bomb.exists() or bomb.stat().st_size <= 50 * 2**20


def test_a_deeply_nested_student_folder_does_not_crash_the_batch(course, tmp_path):
    """prepare() stages every submission in the batch process itself and catches only GraderError; the intake's
    _walk uses os.walk, which recurses once per folder level on Python 3.11: a cloned repository (git keeps deep
    trees) 1,200 folders deep raises RecursionError and ends the whole class's run."""
    from grader.course import manifest as manifests

    klass = tmp_path / "class"
    write_submission(klass / "alice", {})
    deep = klass / "mallory"
    deep.mkdir(parents=True)
    here = os.getcwd()
    try:
        try:
            os.chdir(deep)
            for _ in range(1200):
                os.mkdir("d")
                os.chdir("d")
            Path("x.txt").write_text("x")
        finally:
            os.chdir(here)
        m = manifests.load("mini", course)
        subs = batch.discover(klass, tmp_path / "state")
        for s in subs:
            batch.prepare(s, m, course)  # must not raise
        mallory = next(s for s in subs if s.id == "mallory")
        assert mallory.error or mallory.refused or not mallory.sources
    finally:
        _rm_deep(deep)


def test_fifos_and_devices_in_a_class_folder_do_not_hang_the_batch(course, tmp_path):
    from grader.course import manifest as manifests

    klass = tmp_path / "class"
    write_submission(klass / "alice", {})
    os.mkfifo(klass / "fifo.zip")
    os.symlink("/dev/zero", klass / "zero.zip")
    mallory = write_submission(klass / "mallory", {})
    (mallory / "mini_pkg" / "work.py").unlink()
    os.mkfifo(mallory / "mini_pkg" / "work.py")
    (mallory / "mini_pkg" / "more.py").unlink()
    os.symlink("/dev/zero", mallory / "mini_pkg" / "more.py")
    m = manifests.load("mini", course)
    with deadline(60):
        subs = batch.discover(klass, tmp_path / "state")
        for s in subs:
            batch.prepare(s, m, course)
    by = {s.id: s for s in subs}
    assert by["fifo.zip"].error and by["zero.zip"].error
    assert "mini_pkg/work.py" not in by["mallory"].sources and "mini_pkg/more.py" not in by["mallory"].sources


def test_a_change_to_a_notebook_alone_is_regraded_when_reports_are_made(tmp_path, monkeypatch):
    """With --report the stored result holds the notebook report, but the key is the content hash of the
    graded .py files only (intake.stage does not hash notebooks): a student who fixes an answer in the notebook
    is 'unchanged and skipped', and the TA grades the old answers."""
    course = make_course(tmp_path / "course")
    toml = course / "assignments" / "mini" / "assignment.toml"
    toml.write_text(
        toml.read_text().replace(
            'sandbox_paths = ["mini_pkg"]', 'sandbox_paths = ["mini_pkg"]\nnotebooks = ["nb/q.ipynb"]', 1
        )
    )
    (course / "nb").mkdir()
    nbformat.write(nbformat.v4.new_notebook(), course / "nb" / "q.ipynb")

    class FakeRunner:  # no grading process: what is measured is only whether the batch regrades
        where = "fake"

        def __init__(self, jobs):
            pass

        def run(self, jobs):
            for tag, _job in jobs:
                yield tag, {"status": "graded", "files": {"results.json": b'{"tests": []}'}, "seconds": 0.0}

        def close(self):
            pass

    monkeypatch.setattr(batch, "LocalRunner", FakeRunner)
    klass = tmp_path / "class"
    folder = write_submission(klass / "alice", {})
    (folder / "nb").mkdir()
    summaries = []
    for answer in ("first answer", "changed answer"):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_markdown_cell(answer)]
        nbformat.write(nb, folder / "nb" / "q.ipynb")
        o = batch.Options(
            input=klass, assignment="mini", out=tmp_path / "out", kit=course, jobs=1, report=True, similarity=False
        )
        summaries.append(batch.run_batch(o, stream=io.StringIO()))
    assert summaries[0].graded == 1
    assert summaries[1].graded == 1, "the changed notebook was skipped as unchanged"


# -- 2b. batch outputs: CSV, class.html, annotations ----------------------------------------------------------

FORMULAS = [
    "=1+1",
    "+1+1",
    "-1+1",
    "@SUM(A1)",
    "\t=1+1",
    "\r=1+1",
    " =1+1",
    '\n=HYPERLINK("http://x")',
    "=cmd|' /C calc'!A0",
]


def _dangerous(cell: str) -> bool:
    return cell[:1] in ("=", "+", "-", "@", "\t", "\r")


def test_gradebook_and_canvas_cells_are_never_formulas(course, tmp_path):
    from grader.course import manifest as manifests

    m = manifests.load("mini", course)
    subs = []
    for i, f in enumerate(FORMULAS):
        s = batch.Submission([batch.Student(f + str(i), name=f, email=f)], None, error=f, slug=f"s{i}")
        subs.append(s)
    records = {s.slug: {"status": "error", "error": s.error, "dataset": "=x", "device": "+y"} for s in subs}
    batch.write_tables(tmp_path, m, subs, records)
    for name in ("gradebook.csv", "canvas.csv", "canvas-review.csv"):
        with open(tmp_path / name, newline="") as f:
            table = list(csv.reader(f))
        rows = table[1:] if name == "canvas-review.csv" else table[2:]  # the review file has no points row
        assert name == "canvas.csv" or len(rows) == len(FORMULAS), name
        for row in rows:
            assert not any(_dangerous(c) for c in row), (name, row)
            assert len(row) == len(table[0])


def test_similarity_csv_cells_are_never_formulas(tmp_path):
    from grader.classroom.similarity import Pair, write_csv

    names = {f"s{i}": f for i, f in enumerate(FORMULAS)}
    pairs = [Pair(f"s{i}", f"s{(i + 1) % len(FORMULAS)}", 0.9, [("f", 0.9)]) for i in range(len(FORMULAS))]
    write_csv(tmp_path / "similarity.csv", pairs, names)
    with open(tmp_path / "similarity.csv", newline="") as f:
        table = list(csv.reader(f))
    for row in table[1:]:
        assert not any(_dangerous(c) for c in row[:2]), row


def test_class_html_escapes_ids_names_errors_and_feedback(course, tmp_path):
    from grader.classroom.classreport import write_class_report
    from grader.course import manifest as manifests

    m = manifests.load("mini", course)
    evil = '<img src=x onerror=alert(1)><script>alert(2)</script>"\'><a href="javascript:alert(3)">'
    subs, records = [], {}
    for i in range(2):
        s = batch.Submission([batch.Student(evil + str(i), name=evil)], None, slug=f"s{i}")
        subs.append(s)
        (tmp_path / s.slug).mkdir()
        results = {
            "tests": [
                {
                    "name": f"{evil} [{evil}]",
                    "status": "failed",
                    "score": 0,
                    "max_score": 3,
                    "output": f"{evil}\nLikely bug: {evil}.",
                },
            ],
            "extra_data": {
                "checks": [
                    {
                        "id": evil,
                        "mistakes": [evil],
                        "grader_errors": [evil],
                        "rule_hits": [{"rule": "forbidden", "name": evil, "file": evil, "line": 1}],
                    }
                ]
            },
        }
        (tmp_path / s.slug / "results.json").write_text(json.dumps(results))
        records[s.slug] = {
            "status": "graded" if i == 0 else "error",
            "score": 0,
            "max_score": 10,
            "parts": {"basics": 0},
            "error": evil,
            "files": [f"{evil}.html", "results.json"],
        }
    page = write_class_report(tmp_path, m, subs, records, course).read_text()
    a = audit(page)
    assert a.bad == [], a.bad
    assert "<script>alert" not in page and "onerror=alert" not in page.replace("onerror=alert(1)&gt;", "")


def test_workflow_commands_cannot_be_injected_through_feedback_or_titles(course, tmp_path):
    from grader.reports import annotate

    repo = write_submission(tmp_path / "repo", {})
    payloads = [
        "wrong\n::error file=x.py,line=1::forged",
        "wrong\r::add-mask::secret",
        "wrong%0A::stop-commands::tok",
        "wrong\r\n::set-output name=x::y",
        "wrong\x1b[2K\n::warning::forged",
    ]
    tests = [
        {"name": f"t{i}::x,y%0A::error::z [mini.scale]", "status": "failed", "score": 0, "max_score": 4, "output": p}
        for i, p in enumerate(payloads)
    ]
    lines = annotate.annotations({"tests": tests, "extra_data": {"assignment": "mini"}}, course, repo)
    assert len(lines) == len(payloads)
    from grader.reports.formats import clean_text

    for line, payload in zip(lines, payloads):
        assert "\n" not in line and "\r" not in line
        head, sep, message = line[2:].partition("::")
        assert sep and head.startswith("error ") and "::" not in head  # the properties end at the first ::
        # the runner decodes %0D, %0A and %25 in the data: the student's text comes back as it was, never more
        decoded = message.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")
        assert decoded == clean_text(payload).strip()


def test_non_finite_image_sizes_from_the_kernel_do_not_kill_the_report():
    """Outputs come from the kernel over JSON that allows Infinity/NaN; clean_output's int(v) then raises
    (OverflowError/ValueError) and the whole report is lost (the student can suppress their own report)."""
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()
    out = nbformat.NotebookNode(
        output_type="display_data",
        data={"image/png": png},
        metadata={"image/png": {"width": float("inf"), "height": float("nan")}},
    )
    page = _report(outputs=[out])
    assert "data:image/png" in page
