"""Notebook reports: a submission's notebooks run in the sandbox and become a report a TA grades from.

Most tests run one small course ("toy") once, with notebooks that attack the grader, hang, raise, print hostile
HTML, are malformed or are missing; the slow test runs the reference's A1 notebooks."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import textwrap
import uuid
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest

from grader.course import manifest as manifests
from grader.errors import GraderError
from grader.notebooks.answers import find_answers, never_run, questions, read_notebook
from grader.notebooks.browser import chromium
from grader.notebooks.sanitise import clean_html, clean_output, finish_page
from grader.sandbox.isolation import detect_isolation
from tests.conftest import ROOT, processes_with

needs_bwrap = pytest.mark.skipif(detect_isolation().mode != "bwrap", reason="bubblewrap is not usable here")
needs_chromium = pytest.mark.skipif(chromium() is None, reason="Chromium is not installed (apt-get install chromium)")

SECRET = "HIDDEN-SOURCE-7731"  # only in the hidden check's source
HIDDEN_FEEDBACK = "HIDDEN-FEEDBACK-5521"  # only in the hidden check's failure message

MANIFEST = """
name = "toy"
title = "Toy assignment"
files = ["toy/calc.py"]
notebooks = ["notebooks/attacks.ipynb", "notebooks/badjson.ipynb", "notebooks/oldformat.ipynb",
             "notebooks/absent.ipynb"]
checks = ["checks.py"]
hidden_checks = ["hidden.py"]
sandbox_paths = ["toy"]

[limits]
call_timeout = 30
notebook_cell_timeout = 8
notebook_timeout = 300
notebook_training_scale = 0.5

[[parts]]
name = "calc"
title = "Calculator"
module = "toy.calc"
file = "toy/calc.py"
points = 4

[parts.functions]
add = 4

[[questions]]
id = "why"
notebook = "notebooks/attacks.ipynb"
points = 2

[[questions]]
id = "skipped"
notebook = "notebooks/attacks.ipynb"
points = 1

[[questions]]
id = "gone"
notebook = "notebooks/absent.ipynb"
points = 1
"""

CHECKS = '''
from grader.judge.checks import check

@check("add_small", function="add", a=2, b=3, expected=5, message="add(2, 3) should be 5")
def add_small(ctx, a, b, expected, message):
    """add returns the sum"""
    ctx.expect(ctx.call("add", a, b) == expected, message)
'''

HIDDEN = f'''
from grader.judge.checks import variant

from .checks import add_small

# {SECRET}
HIDDEN = [variant(add_small, "secret", a=1, b=1, expected=3, message="{HIDDEN_FEEDBACK}")]
'''


def _question(qid: str, prompt: str, answer: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_markdown_cell(
        f"### Inline question\n\n{prompt}\n\n*Your answer:*\n{answer}", metadata={"tags": [f"question:{qid}"]}
    )


def _course_notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [_question("why", "Why does k matter?", ""), _question("skipped", "Explain the plot.", "")]
    return nb


def _attack_notebook(out: Path, course: Path) -> nbformat.NotebookNode:
    code = nbformat.v4.new_code_cell
    attempts = textwrap.dedent(f"""
        import os
        def attempt(what, action):
            try:
                action()
                print("ATTEMPT", what, "succeeded")
            except Exception as e:
                print("ATTEMPT", what, "failed:", type(e).__name__)
        attempt("results", lambda: open({str(out / "results.json")!r}, "w").write('{{"score": 1000}}'))
        attempt("grader", lambda: open({str(ROOT / "grader" / "judge" / "runner.py")!r}, "a").write("\\n# hacked"))
        attempt("kit", lambda: open("../toy/calc.py", "a").write("# hacked"))
        attempt("hidden", lambda: print(open({str(course / "assignments" / "toy" / "hidden.py")!r}).read()))
        attempt("network", lambda: __import__("socket").create_connection(("1.1.1.1", 80), timeout=2))
    """)
    hostile = textwrap.dedent("""
        from IPython.display import HTML, SVG, Javascript, Markdown, display
        display(HTML('<b id="hostile">bold text</b><script>document.title="pwned"</script>'
                     '<img src=x onerror="document.title=\\'pwned\\'"><a href="javascript:alert(1)">link</a>'))
        display(Javascript('document.title = "pwned"'))
        display(SVG('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'))
        display(Markdown('[click](javascript:alert(2)) <img src=y onerror="alert(3)">'))
    """)
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Toy notebook"),
        code(
            "import os, sys\nsys.path.insert(0, os.path.abspath('..'))\nfrom toy.calc import add\n"
            "print('sum is', add(2, 3))"
        ),
        code(attempts),
        code("1 / 0"),
        code("while True:\n    pass"),
        code("import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    time.sleep(0.01)"),
        code("print('after the hang')"),
        code(hostile),
        nbformat.v4.new_markdown_cell(
            "<script>document.title='pwned'</script> <img src=z onerror=\"alert(4)\"> [x](javascript:alert(5))"
        ),
        _question("why", "Why does k matter?", "Because **ANSWER-TEXT-42** grows."),
        _question("skipped", "Explain the plot.", ""),
        code("print('x' * 100_000)"),
        code("import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()", metadata={"tags": ["plot"]}),
        code(LINGER),
        code("import os\nprint('TRAINING SCALE', os.environ.get('DLCV_TRAINING_SCALE'))"),
    ]
    return nb


# processes that try to outlive the notebook: a new session each, and a shell's doubly backgrounded child
LINGER_MARKER = f"dlcv-nb-linger-{uuid.uuid4().hex}"
LINGER = textwrap.dedent(f"""
    import subprocess, sys
    code = "import time\\nwhile True:\\n    time.sleep(0.05)\\n"
    for _ in range(3):
        subprocess.Popen([sys.executable, "-c", code, {LINGER_MARKER!r}], start_new_session=True,
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(["sh", "-c", f"( {{sys.executable}} -c 'import time; time.sleep(600)' {LINGER_MARKER} & ) &"])
    print("LINGERING", len(subprocess.run(["pgrep", "-f", {LINGER_MARKER!r}], capture_output=True).stdout.split()))
""")


def _make_course(base: Path) -> Path:
    course = base / "course"
    (course / "assignments" / "toy").mkdir(parents=True)
    (course / "assignments" / "toy" / "assignment.toml").write_text(MANIFEST)
    (course / "assignments" / "toy" / "checks.py").write_text(CHECKS)
    (course / "assignments" / "toy" / "hidden.py").write_text(HIDDEN)
    (course / "toy").mkdir()
    (course / "toy" / "__init__.py").write_text("")
    (course / "toy" / "calc.py").write_text("def add(a, b):\n    raise NotImplementedError\n")
    (course / "notebooks").mkdir()
    nbformat.write(_course_notebook(), str(course / "notebooks" / "attacks.ipynb"))
    return course


def _tree_hash(path: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts:
            h.update(str(p.relative_to(path)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def _grader(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "grader", *args], capture_output=True, text=True, timeout=900, cwd=ROOT
    )


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """The toy course graded twice: without and with --report --pdf (the notebook run attacks the grader)."""
    base = tmp_path_factory.mktemp("toy")
    course = _make_course(base)
    out, plain = base / "out", base / "plain"
    sub = base / "sub"
    (sub / "toy").mkdir(parents=True)
    (sub / "toy" / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    (sub / "notebooks").mkdir()
    nbformat.write(_attack_notebook(out, course), str(sub / "notebooks" / "attacks.ipynb"))
    (sub / "notebooks" / "badjson.ipynb").write_text('{"cells": [')
    (sub / "notebooks" / "oldformat.ipynb").write_text(
        json.dumps({"nbformat": 3, "nbformat_minor": 0, "worksheets": [], "metadata": {}})
    )
    before = _tree_hash(course)
    r_plain = _grader(
        "--course", str(course), "grade", str(sub), "-a", "toy", "--hidden", "--out", str(plain), "--no-color"
    )
    r = _grader(
        "--course",
        str(course),
        "grade",
        str(sub),
        "-a",
        "toy",
        "--hidden",
        "--report",
        "--pdf",
        "--out",
        str(out),
        "--no-color",
    )
    after = _tree_hash(course)
    return {
        "course": course,
        "out": out,
        "plain": plain,
        "run": r,
        "plain_run": r_plain,
        "before": before,
        "after": after,
    }


# -- the report is complete, whatever the notebooks do ---------------------------------------------------------


@needs_bwrap
def test_notebooks_cannot_change_the_score_the_results_or_the_kit(toy):
    assert toy["run"].returncode == 0, toy["run"].stderr[-3000:]
    results = json.loads((toy["out"] / "results.json").read_text())
    plain = json.loads((toy["plain"] / "results.json").read_text())
    assert results["score"] == plain["score"]
    assert [(t["name"], t["score"], t["status"]) for t in results["tests"]] == [
        (t["name"], t["score"], t["status"]) for t in plain["tests"]
    ]
    assert toy["after"] == toy["before"], "a notebook changed the course"
    assert "# hacked" not in (ROOT / "grader" / "judge" / "runner.py").read_text()
    html = (toy["out"] / "report.html").read_text()
    for what in ("results", "grader", "kit", "hidden", "network"):
        assert f"ATTEMPT {what} failed" in html, f"the notebook's attempt on {what} did not fail"
    assert SECRET not in html and SECRET not in (toy["out"] / "report.ipynb").read_text()


@needs_bwrap
def test_the_kernel_trains_the_manifests_share_of_each_training(toy):
    assert "TRAINING SCALE 0.5" in (toy["out"] / "report.html").read_text()


@needs_bwrap
def test_no_process_a_notebook_starts_outlives_the_report(toy):
    html = (toy["out"] / "report.html").read_text()
    started = re.search(r"LINGERING (\d+)", html)
    assert started and int(started.group(1)) >= 3, "the notebook's last cell should have started its processes"
    assert processes_with(LINGER_MARKER) == []


@needs_bwrap
def test_hidden_checks_appear_by_title_and_result_only(toy):
    html = (toy["out"] / "report.html").read_text()
    assert "add returns the sum (secret)" in html  # the hidden check, by its title ...
    assert HIDDEN_FEEDBACK not in html  # ... and result only
    assert "add(2, 3)" not in html  # the public check passed: no feedback shown for it either


@needs_bwrap
def test_cells_that_raise_hang_or_kill_the_kernel_are_marked_and_later_cells_run(toy):
    extra = json.loads((toy["out"] / "results.json").read_text())["extra_data"]["notebooks"]
    runs = {n["notebook"]: n for n in extra["notebooks"]}
    cells = runs["notebooks/attacks.ipynb"]["cells"]
    assert cells["4"].startswith("raised ZeroDivisionError")
    assert cells["5"].startswith("timed out") and "restarted" not in cells["5"]  # interrupted, state kept
    assert cells["6"].startswith("timed out") and "restarted" in cells["6"]  # ignored the interrupt
    assert not {"2", "3", "7", "8"} & set(cells)  # the setup, the attacks, the cell after, the HTML ran
    html = (toy["out"] / "report.html").read_text()
    assert "after the hang" in html
    assert "ZeroDivisionError" in html
    assert re.search(r"output cut: [\d,]+ more characters", html)
    assert "data:image/png;base64," in html  # the plot, inline


@needs_bwrap
def test_malformed_and_missing_notebooks_are_reported_with_a_reason(toy):
    extra = json.loads((toy["out"] / "results.json").read_text())["extra_data"]["notebooks"]
    runs = {n["notebook"]: n for n in extra["notebooks"]}
    assert runs["notebooks/badjson.ipynb"]["status"] == "unreadable"
    assert "not valid JSON" in runs["notebooks/badjson.ipynb"]["message"]
    assert "version 3" in runs["notebooks/oldformat.ipynb"]["message"]
    assert runs["notebooks/absent.ipynb"]["status"] == "missing"
    html = (toy["out"] / "report.html").read_text()
    for n in runs.values():
        if n["status"] != "ran":
            assert n["notebook"] in html
    assert "not valid JSON" in html and "version 3" in html


@needs_bwrap
def test_answers_are_listed_in_manifest_order_with_unanswered_and_missing_flagged(toy):
    answers = json.loads((toy["out"] / "answers.json").read_text())["questions"]
    assert [a["id"] for a in answers] == ["why", "skipped", "gone"]
    status = {a["id"]: a["status"] for a in answers}
    assert status == {"why": "answered", "skipped": "unanswered", "gone": "missing"}
    why = answers[0]
    assert "ANSWER-TEXT-42" in why["answer"] and why["points"] == 2
    assert why["prompt"].endswith("Why does k matter?")  # from the course's own notebook
    extra = json.loads((toy["out"] / "results.json").read_text())["extra_data"]["notebooks"]
    assert [a["id"] for a in extra["answers"]] == ["why", "skipped", "gone"]
    html = (toy["out"] / "report.html").read_text()
    assert 'id="dlcv-answers"' in html and "ANSWER-TEXT-42" in html
    assert "UNANSWERED" in html and "MISSING" in html
    for qid in ("why", "skipped", "gone"):
        assert f'href="#cell-id=dlcv-q-{qid}"' in html and f'id="cell-id=dlcv-q-{qid}"' in html
    nb = nbformat.read(str(toy["out"] / "report.ipynb"), as_version=4)
    nbformat.validate(nb)


class _Scan(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag


def _executable(html: str) -> list[str]:
    """Everything in a page that could run script."""
    scan = _Scan()
    scan.feed(html)
    found = []
    for tag, attrs in scan.tags:
        if tag in ("script", "iframe", "object", "embed", "base", "form"):
            found.append(tag)
        for k, v in attrs.items():
            if k.startswith("on") or (v or "").strip().lower().startswith(("javascript:", "vbscript:")):
                found.append(f"{tag} {k}={v}")
    return found


@needs_bwrap
def test_hostile_outputs_leave_no_executable_script(toy):
    html = (toy["out"] / "report.html").read_text()
    assert _executable(html) == []
    assert "bold text" in html  # the harmless part of the HTML output stays
    head = html[html.lower().index("<head>") :]
    first = re.search(r"<(\w+)[^>]*>", head[len("<head>") :])
    assert first.group(0).startswith('<meta http-equiv="Content-Security-Policy"')
    assert "script-src" not in first.group(0) and "default-src 'none'" in first.group(0)


# -- the browser and the PDF ----------------------------------------------------------------------------------------


@needs_bwrap
@needs_chromium
def test_chromium_opens_the_report_from_disk_and_shows_scores_and_answers(toy, tmp_path):
    from grader.notebooks.browser import browser_argv

    page = (toy["out"] / "report.html").resolve().as_uri()
    argv = browser_argv(chromium(), tmp_path / "profile")
    dom = subprocess.run([*argv, "--dump-dom", page], capture_output=True, text=True, timeout=180).stdout
    assert 'id="dlcv-scores"' in dom and 'id="dlcv-answers"' in dom
    assert "pwned" not in re.sub(r"<pre.*?</pre>|<code.*?</code>", "", dom, flags=re.S).split("<body")[0]
    assert "<title>pwned" not in dom
    shot = tmp_path / "shot.png"
    subprocess.run([*argv, f"--screenshot={shot}", "--window-size=1200,1600", page], capture_output=True, timeout=180)
    import matplotlib.image

    pixels = matplotlib.image.imread(str(shot))
    assert pixels.std() > 0.02, "the screenshot is blank"


def _pdf_pages(pdf: Path) -> list[str]:
    n = int(
        re.search(
            r"Pages:\s+(\d+)", subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True).stdout
        ).group(1)
    )
    return [
        subprocess.run(
            ["pdftotext", "-layout", "-f", str(i), "-l", str(i), str(pdf), "-"], capture_output=True, text=True
        ).stdout
        for i in range(1, n + 1)
    ]


@needs_bwrap
@needs_chromium
@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils is not installed")
def test_the_pdf_starts_each_question_on_a_new_page_in_manifest_order(toy):
    pages = _pdf_pages(toy["out"] / "report.pdf")
    starts = []
    for i, text in enumerate(pages):
        m = re.match(r"\s*Question (\d+): (\w+)", text)
        if m:
            starts.append((i, m.group(2)))
    assert [q for _, q in starts] == ["why", "skipped", "gone"]
    assert len({i for i, _ in starts}) == 3  # one page (or more) each


def test_without_chromium_the_report_still_lands_and_says_how_to_get_the_pdf(tmp_path, monkeypatch):
    from grader.notebooks.browser import print_pdf

    monkeypatch.setenv("CHROMIUM", str(tmp_path / "no-such-browser"))
    page = tmp_path / "report.html"
    page.write_text("<html><head></head><body>x</body></html>")
    why = print_pdf(page, tmp_path / "report.pdf")
    assert "apt-get install chromium" in why and not (tmp_path / "report.pdf").exists()


# -- units: the manifest's questions, reading notebooks, answers, sanitising ---------------------------------------


def _toy_manifest(tmp_path: Path, questions_toml: str) -> manifests.Manifest:
    """The toy manifest with these [[questions]] (checked as it loads)."""
    course = _make_course(tmp_path)
    path = course / "assignments" / "toy" / "assignment.toml"
    path.write_text(MANIFEST.split("[[questions]]")[0] + questions_toml)
    return manifests.load("toy", course)


@pytest.mark.parametrize(
    "entry, message",
    [
        ('id = "a b"\nnotebook = "notebooks/attacks.ipynb"\npoints = 1', "'id' should be"),
        ('id = "q"\nnotebook = "notebooks/other.ipynb"\npoints = 1', "one of the manifest's notebooks"),
        ('id = "q"\nnotebook = "notebooks/attacks.ipynb"\npoints = "two"', "'points' should be"),
        ('id = "q"\nnotebook = "notebooks/attacks.ipynb"\npoints = 1\nfind = "x"', "unknown key 'find'"),
        ('id = "q"\nnotebook = "notebooks/attacks.ipynb"\npoints = 1\ntag = "a tag"', "'tag' should be"),
    ],
)
def test_malformed_questions_are_refused_with_the_entry_named(tmp_path, entry, message):
    with pytest.raises(GraderError, match=re.escape(message)) as e:
        _toy_manifest(tmp_path, f"[[questions]]\n{entry}\n")  # when the manifest loads, not at --report
    assert "[[questions]] #1" in str(e.value)


def test_the_course_questions_are_valid_and_each_finds_one_cell_of_its_notebook():
    for name in manifests.available(ROOT):
        m = manifests.load(name, ROOT)
        for q in questions(m):
            nb = nbformat.read(str(ROOT / q.notebook), as_version=4)
            tagged = [c for c in nb.cells if q.tag in c.metadata.get("tags", [])]
            assert len(tagged) == 1, f"{name}: question {q.id} should tag one cell of {q.notebook}"
            assert "*Your answer:*" in tagged[0].source


@pytest.mark.parametrize(
    "text, message",
    [
        (b'{"cells": [', "not valid JSON"),
        (json.dumps({"nbformat": 3, "worksheets": []}).encode(), "version 3"),
        (b"[1, 2]", "not a notebook"),
        (
            json.dumps({"nbformat": 4, "nbformat_minor": 5, "cells": "no", "metadata": {}}).encode(),
            "not a valid notebook",
        ),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_malformed_notebooks_are_named_with_the_reason(text, message):
    nb, why = read_notebook(text, "notebooks/x.ipynb")
    assert nb is None and message in why and "notebooks/x.ipynb" in why


def test_answers_are_read_below_the_marker_and_continued_cells_count(tmp_path):
    m = _toy_manifest(
        tmp_path,
        '[[questions]]\nid = "why"\nnotebook = "notebooks/attacks.ipynb"\npoints = 2\n'
        '[[questions]]\nid = "skipped"\nnotebook = "notebooks/attacks.ipynb"\npoints = 1\n',
    )
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        _question("why", "Why does k matter?", "First part."),
        nbformat.v4.new_markdown_cell("Second part."),
        nbformat.v4.new_markdown_cell("## Next section"),
        nbformat.v4.new_markdown_cell(
            "Explain the plot.\n\nI removed the marker and answered.", metadata={"tags": ["question:skipped"]}
        ),
    ]
    answers = find_answers(questions(m), {"notebooks/attacks.ipynb": nb}, m.dir.parent.parent)
    assert answers[0].status == "answered" and answers[0].text == "First part.\n\nSecond part."
    assert answers[1].status == "answered" and "I removed the marker" in answers[1].text
    nb.cells[0] = _question("why", "Why does k matter?", "  TODO  ")
    del nb.cells[3].metadata["tags"]
    answers = find_answers(questions(m), {"notebooks/attacks.ipynb": nb}, m.dir.parent.parent)
    assert answers[0].status == "answered"  # "Second part." still answers it
    assert answers[1].status == "missing" and "question:skipped" in answers[1].message


def test_html_is_sanitised_after_rendering_and_the_page_is_filtered_again():
    hostile = (
        '<p>ok</p><script>alert(1)</script><img src=x onerror=alert(2)><a href="javascript:alert(3)">a</a>'
        '<style>body{background:url(http://evil)}</style><iframe src="http://evil"></iframe>'
        '<img src="data:image/png;base64,iVBORw0KGgo=">'
    )
    cleaned = clean_html(hostile)
    assert _executable(cleaned) == [] and "<p>ok</p>" in cleaned and "data:image/png" in cleaned
    assert "alert(1)" not in cleaned and "evil" not in cleaned
    page = finish_page(
        "<!DOCTYPE html><html><head><title>t</title><script>x()</script></head><body>"
        '<div onclick="x()">a</div><a href="javascript:x()">b</a><svg><script>y()</script></svg>'
        "<style>.a{}</style></body></html>"
    )
    assert _executable(page) == [] and "<style>.a{}</style>" in page
    out = clean_output(
        {
            "output_type": "display_data",
            "metadata": {"image/png": {"width": "1 onerror=x"}},
            "data": {
                "application/javascript": "x()",
                "image/svg+xml": "<svg><script/></svg>",
                "image/png": 'AAAA" onerror="x',
            },
        }
    )
    assert set(out["data"]) == {"text/plain"} and "not shown" in out["data"]["text/plain"]


def test_never_run_notebooks_are_recognised():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1")]
    assert never_run(nb)
    nb.cells[0].execution_count = 1
    assert not never_run(nb)


# -- submit, release -----------------------------------------------------------------------------------------------


def test_submit_warns_about_unanswered_questions_and_notebooks_never_run(tmp_path):
    from grader.kit.submit import build_submission

    course = _make_course(tmp_path)
    folder = tmp_path / "work"
    (folder / "toy").mkdir(parents=True)
    (folder / "toy" / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    (folder / "notebooks").mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("print(1)"),
        _question("why", "Why?", "Because."),
        _question("skipped", "Explain.", ""),
    ]
    for name in ("attacks", "badjson", "oldformat", "absent"):
        nbformat.write(nb, str(folder / "notebooks" / f"{name}.ipynb"))
    warnings: list[str] = []
    out = build_submission(folder, "toy", kit=course, out=tmp_path / "s.zip", warn=warnings.append)
    assert out.is_file()
    assert any("skipped" in w and "unanswered" in w for w in warnings)
    assert any("gone" in w and "missing" in w for w in warnings)
    assert not any("question why" in w for w in warnings)
    assert sum("has no outputs" in w for w in warnings) == 4
    import zipfile

    assert "notebooks/attacks.ipynb" in zipfile.ZipFile(out).namelist()


def test_the_kit_and_the_bundle_produce_the_report():
    from grader.kit.release import GITHUB_WORKFLOW, RUN_AUTOGRADER, STUDENT_MAKEFILE

    assert re.search(r"^report: install.*\n\t\$\(BIN\)/grader grade \. --report", STUDENT_MAKEFILE, re.M)
    assert re.search(r"^notebook: install.*\n\t\$\(BIN\)/jupyter lab notebooks/", STUDENT_MAKEFILE, re.M)
    assert "jupyterlab" in STUDENT_MAKEFILE
    assert "--report" in RUN_AUTOGRADER
    assert "make report" in GITHUB_WORKFLOW and "actions/upload-artifact" in GITHUB_WORKFLOW


# -- the reference's A1 notebooks ----------------------------------------------------------------------------------


@needs_bwrap
@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_the_reference_a1_notebooks_run_in_the_sandbox_and_the_report_holds_plots_answers_and_scores(tmp_path):
    out = tmp_path / "out"
    sub = tmp_path / "sub"
    m = manifests.load("a1_knn", ROOT)
    for f in [*m.files, *m.notebooks]:
        (sub / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, sub / f)
    r = _grader("grade", str(sub), "-a", "a1_knn", "--report", "--out", str(out), "--no-color")
    assert r.returncode == 0, r.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    extra = results["extra_data"]["notebooks"]
    for run in extra["notebooks"]:
        assert run["status"] == "ran", run
        source = nbformat.read(str(ROOT / run["notebook"]), as_version=4)
        for cell, what in run["cells"].items():  # the self-checks need the course folder, absent here
            assert "selfcheck" in source.cells[int(cell) - 1].source, f"{run['notebook']} cell {cell}: {what}"
        print(
            f"\n{run['notebook']}: {run['seconds']:.1f} s, of which starting the kernel {run['kernel_seconds']:.1f} s"
        )
    print(f"execute {extra['seconds']['execute']:.1f} s, render {extra['seconds']['render']:.1f} s")
    report = nbformat.read(str(out / "report.ipynb"), as_version=4)
    html = (out / "report.html").read_text()
    plots = 0
    for path in m.notebooks:
        plots += sum("plot" in c.metadata.get("tags", []) for c in nbformat.read(str(ROOT / path), 4).cells)
    drawn = [
        c
        for c in report.cells
        if "plot" in c.metadata.get("tags", []) and any("image/png" in o.get("data", {}) for o in c.get("outputs", []))
    ]
    assert plots and len(drawn) == plots, "a plot of the reference's notebooks is missing from the report"
    assert html.count("data:image/png;base64,") >= plots
    qs = questions(m)
    assert [a["id"] for a in extra["answers"]] == [q.id for q in qs]
    for q in qs:
        assert f'id="cell-id=dlcv-q-{q.id}"' in html
    score = f"{results['score']:.2f}".rstrip("0").rstrip(".")
    assert 'id="dlcv-scores"' in html and f"Score: {score} / " in html
    assert _executable(html) == []


def test_a_flagged_cell_is_named_by_the_heading_it_sits_under():
    """JupyterLab shows headings, not cell numbers: the report says which heading a flagged cell is under (the
    student's text, escaped)."""
    import nbformat

    from grader.notebooks.report import _under

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_markdown_cell("Some text\n## Two loops\nmore"),
        nbformat.v4.new_code_cell("compute()"),
        nbformat.v4.new_markdown_cell("# <script>alert(1)</script> " + "long " * 20),
        nbformat.v4.new_code_cell("other()"),
    ]
    assert _under(nb, 0) == ""
    assert _under(nb, 2) == " (under “Two loops”)"
    named = _under(nb, 4)
    assert "<script>" not in named and "&lt;script&gt;" in named and named.endswith("…”)")
