"""The report a TA grades from: `report.html` (self-contained, opens offline), the same content as
`report.ipynb`, `answers.json`, and with `--pdf` a `report.pdf` printed by headless Chromium.

It holds a header (assignment, submission and content hash, grading time, device, data set, grader version),
the score per part with each failed check's feedback (hidden checks by title and result only), an index
"Answers for manual grading" linking to every inline question of the manifest with the student's answer in full
(unanswered and missing ones flagged; in the PDF each question starts a new page), then each notebook as it ran
in the sandbox (grader.notebooks.execute), cells that raised or timed out marked, long outputs cut with a note.

A notebook's content is untrusted. Outputs keep only plain text, sanitised HTML and Markdown, and PNG/JPEG
images (checked to be base64); Markdown and HTML are sanitised after rendering (bleach: no script, no event
handler, no style, links only to http(s), mailto and anchors, images only inline); the finished page is
filtered again (no script, frame, object, form, base or event-handler attribute anywhere) and starts with a
Content-Security-Policy that forbids every script and every request outside the file. So a TA who opens 400
reports runs no student JavaScript and fetches nothing.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import html
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from grader.course.manifest import Manifest
from grader.errors import GraderError
from grader.judge.results import GradeResult
from grader.notebooks.answers import Answer
from grader.notebooks.browser import print_pdf
from grader.notebooks.execute import NotebookRun
from grader.notebooks.sanitise import OWN_CELLS, clean_attachments, clean_cell, clean_html, cut_text, finish_page
from grader.reports.formats import clean_text, md_inline, write_atomic

# -- building the report ------------------------------------------------------------------------------------------


def _pts(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".")


def _e(text: Any) -> str:
    return html.escape(clean_text(text), quote=True)


def _under(nb, index: int) -> str:
    """' (under “Two loops”)': the heading a cell sits under, since JupyterLab shows headings, not cell numbers."""
    for cell in reversed(nb.cells[:index]):
        if cell.get("cell_type") != "markdown":
            continue
        src = cell.get("source", "")
        src = "".join(src) if isinstance(src, list) else str(src)
        heading = next((ln.lstrip("#").strip() for ln in src.splitlines() if ln.startswith("#")), None)
        if heading:
            heading = heading if len(heading) <= 60 else heading[:59] + "…"
            return f" (under “{_e(heading)}”)"
    return ""


def _md(text: str, tags: list[str] | None = None, cell_id: str | None = None) -> Any:
    import nbformat

    cell = nbformat.v4.new_markdown_cell(text, metadata={"tags": tags} if tags else {})
    if cell_id:
        cell.id = cell_id
    return cell


def _status_mark(a: Answer) -> str:
    return {"answered": "answered", "unanswered": "**UNANSWERED**", "missing": "**MISSING**"}[a.status]


def build_notebook(
    result: GradeResult, m: Manifest, runs: list[NotebookRun], answers: list[Answer], *, meta: dict[str, str]
) -> Any:
    """The report as a notebook (nbformat): header, scores, answers, then each executed notebook."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python", "pygments_lexer": "ipython3"},
        "title": clean_text(f"{result.title}: report"),
    }
    cells = nb.cells
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in meta.items())
    cells.append(
        _md(
            f'# {md_inline(result.title)}: report\n\n<table class="dlcv" id="dlcv-header">{rows}</table>',
            cell_id="dlcv-header",
        )
    )
    # scores
    parts = "".join(
        f"<tr><td>{_e(p.title)}</td><td>{_pts(p.score)} / {_pts(p.max_score)}</td></tr>" for p in result.parts
    )
    checks = []
    for c in result.checks:
        kind = "hidden" if c.hidden else "public"
        checks.append(
            f"<tr><td>{_e(c.number)}</td><td>{_e(c.title)}</td><td>{kind}</td>"
            f"<td>{'passed' if c.passed else '<strong>FAILED</strong>'}</td>"
            f"<td>{_pts(c.score)} / {_pts(c.max_score)}</td></tr>"
        )
    text = (
        f"## Score: {_pts(result.score)} / {_pts(result.max_score)}\n\n"
        f'<table class="dlcv" id="dlcv-scores"><tr><th>part</th><th>score</th></tr>{parts}'
        f"<tr><th>total</th><th>{_pts(result.score)} / {_pts(result.max_score)}</th></tr></table>\n\n"
        f'<table class="dlcv" id="dlcv-checks"><tr><th>#</th><th>check</th><th>kind</th><th>result</th>'
        f"<th>points</th></tr>{''.join(checks)}</table>"
    )
    cells.append(_md(text, cell_id="dlcv-scores"))
    if result.problems:
        cells.append(
            _md(
                "### Problems with the submission\n\n"
                + "".join(f'<pre class="dlcv-feedback">{_e(p)}</pre>\n' for p in result.problems),
                cell_id="dlcv-problems",
            )
        )
    failed = [c for c in result.checks if not c.passed and not c.hidden]
    if failed:
        cells.append(
            _md(
                "### Feedback on failed checks\n\n"
                + "\n\n".join(
                    f"**{_e(c.number)} {_e(c.title)}**\n\n"
                    f'<pre class="dlcv-feedback">{_e(cut_text(c.output, 8000))}</pre>'
                    for c in failed
                ),
                cell_id="dlcv-feedback",
            )
        )
    hidden_failed = [c for c in result.checks if not c.passed and c.hidden]
    if hidden_failed:
        cells.append(
            _md(
                f"{len(hidden_failed)} hidden check(s) failed; hidden checks are listed by title and result only.",
                cell_id="dlcv-hidden",
            )
        )
    # answers
    total = sum(a.points for a in answers)
    rows = []
    for i, a in enumerate(answers):
        rows.append(
            f'<tr><td>{i + 1}</td><td><a href="#cell-id=dlcv-q-{_e(a.id)}">{_e(a.id)}</a></td>'
            f"<td>{_e(a.notebook)}</td><td>{_pts(a.points)}</td><td>{_status_mark(a)}</td></tr>"
        )
    index = "## Answers for manual grading\n\n" + (
        f"{len(answers)} question(s), {_pts(total)} points, graded by hand. "
        f"{sum(a.status == 'answered' for a in answers)} answered, "
        f"{sum(a.status == 'unanswered' for a in answers)} unanswered, "
        f"{sum(a.status == 'missing' for a in answers)} missing.\n\n"
        f'<table class="dlcv" id="dlcv-answers"><tr><th>#</th><th>question</th><th>notebook</th>'
        f"<th>points</th><th>status</th></tr>{''.join(rows)}</table>"
        if answers
        else "The manifest names no inline question."
    )
    cells.append(_md(index, cell_id="dlcv-answers"))
    cell_ids: dict[tuple[str, int], str] = {}
    for k, run in enumerate(runs):
        for i in range(len(run.nb.cells) if run.nb is not None else 0):
            cell_ids[(run.path, i)] = f"nb{k + 1}-c{i + 1}"
    for i, a in enumerate(answers):
        where = (
            f" · [cell {a.cell + 1} of {_e(a.notebook)}](#cell-id={cell_ids[(a.notebook, a.cell)]})"
            if a.cell is not None and (a.notebook, a.cell) in cell_ids
            else f" · {_e(a.notebook)}"
        )
        head = (
            f"## Question {i + 1}: {_e(a.id)} ({_pts(a.points)} points)\n\n"
            f"{_status_mark(a)}{where}\n\n"
            + (f'<pre class="dlcv-feedback">{_e(a.message)}</pre>\n\n' if a.message else "")
            + (a.prompt.strip() or "(no prompt)")
        )
        cells.append(_md(clean_text(head), ["dlcv-question"], f"dlcv-q-{a.id}"))
        if a.status == "answered":
            answer = _md(clean_text(a.text), ["dlcv-answer"], f"dlcv-a-{a.id}")
            pasted = _answer_attachments(runs, a)
            if pasted:
                answer.attachments = pasted
            cells.append(answer)
        else:
            cells.append(
                _md(
                    "**No answer.**" if a.status == "unanswered" else "**Missing:** " + _e(a.message),
                    ["dlcv-missing"],
                    f"dlcv-a-{a.id}",
                )
            )
    # the notebooks
    for k, run in enumerate(runs):
        name = _e(run.path)
        if run.nb is None:
            cells.append(
                _md(f"# Notebook {name}\n\n**Not run:** {_e(run.message)}", ["dlcv-page", "dlcv-missing"], f"nb{k + 1}")
            )
            continue
        lines = [f"# Notebook {name}", ""]
        if run.status == "ran":
            lines.append(
                f"Ran in the sandbox in {run.seconds:.1f} s (starting the kernel: {run.kernel_seconds:.1f} s"
                f"{f', {run.kernel_starts} starts' if run.kernel_starts > 1 else ''})."
            )
        else:
            lines.append(f"**Not run:** {_e(run.message)}")
        if run.never_run:
            lines.append("\n**Never run:** the submitted notebook had no outputs at all.")
        if run.cells:
            lines.append("\nCells to look at:\n")
            lines += [
                f"- [cell {i + 1}](#cell-id={cell_ids[(run.path, i)]}){_under(run.nb, i)}: {_e(v)}"
                for i, v in sorted(run.cells.items())
            ]
        cells.append(_md("\n".join(lines), ["dlcv-page"], f"nb{k + 1}"))
        for i, cell in enumerate(run.nb.cells):
            cells.append(clean_cell(cell, cell_ids[(run.path, i)]))
            if i in run.cells:
                flag = f"**Cell {i + 1}{_under(run.nb, i)} {_e(run.cells[i])}.**"
                cells.append(_md(flag, ["dlcv-flag"], f"nb{k + 1}-f{i + 1}"))
    return nb


def _answer_attachments(runs: list[NotebookRun], a: Answer) -> dict[str, dict[str, str]]:
    """The images pasted into the cells an answer was taken from (the question's cell and the Markdown cells
    after it), so that the answer copied into the report shows them; the first of a name wins."""
    run = next((r for r in runs if r.path == a.notebook and r.nb is not None), None)
    if run is None or a.cell is None or not 0 <= a.cell < len(run.nb.cells):
        return {}
    found: dict[str, dict[str, str]] = {}
    for i, cell in enumerate(run.nb.cells[a.cell :]):
        if i and cell.get("cell_type") != "markdown":
            break
        for name, bundle in clean_attachments(cell).items():
            found.setdefault(name, bundle)
    return found


class _Attachments(dict):
    """A cell's attachments as nbconvert sees them: a reference to one that is not there (dropped as unsafe, or
    never attached) becomes an image with no source, which clean_html removes, instead of failing the report."""

    def __contains__(self, name: object) -> bool:
        return True

    def __missing__(self, name: str) -> dict[str, str]:
        return {"text/plain": ""}


def _exporter() -> Any:
    """nbconvert's HTML exporter for the report: Markdown images are never read from files (only a cell's own
    attachments are inlined), a missing attachment is no error, and student HTML is cleaned with the report's
    own ids and classes reserved."""
    from jinja2 import pass_context
    from nbconvert import HTMLExporter

    class Exporter(HTMLExporter):
        @pass_context
        def markdown2html(self, context: Any, source: str) -> str:
            cell = context.get("cell", {}) or {}
            attachments = cell.get("attachments") if isinstance(cell, dict) else None
            safe = {"cell": {"attachments": _Attachments(attachments if isinstance(attachments, dict) else {})}}
            return super().markdown2html(safe, source)

    @pass_context
    def clean(context: Any, fragment: Any) -> str:
        cell = context.get("cell", {}) or {}
        return clean_html(fragment, own=isinstance(cell, dict) and cell.get("id") in OWN_CELLS)

    return Exporter(template_name="lab", sanitize_html=True, embed_images=False, filters={"clean_html": clean})


def render_html(nb: Any) -> str:
    """report.ipynb as one self-contained, script-free HTML page."""
    exporter = _exporter()
    page, _ = exporter.from_notebook_node(
        copy.deepcopy(nb), resources={"metadata": {"name": nb.metadata.get("title", "report")}}
    )
    return finish_page(page)


def _hash_notebooks(notebooks: dict[str, Path]) -> str:
    h = hashlib.sha256()
    for name in sorted(notebooks):
        with contextlib.suppress(OSError):
            h.update(name.encode() + b"\0" + Path(notebooks[name]).read_bytes() + b"\0")
    return h.hexdigest()


def write_report(
    result: GradeResult,
    m: Manifest,
    runs: list[NotebookRun],
    answers: list[Answer],
    out: Path,
    *,
    meta: dict[str, str],
    pdf: bool = False,
) -> tuple[dict[str, Path], list[str]]:
    """Write report.ipynb, report.html, answers.json (and report.pdf) into `out`; returns their paths and
    messages for the terminal."""
    import nbformat

    out.mkdir(parents=True, exist_ok=True)
    nb = build_notebook(result, m, runs, answers, meta=meta)
    page = render_html(nb)
    paths = {"ipynb": out / "report.ipynb", "html": out / "report.html", "answers": out / "answers.json"}
    write_atomic(paths["ipynb"], nbformat.writes(nb) + "\n")
    write_atomic(paths["html"], page)
    write_atomic(
        paths["answers"],
        json.dumps(
            {"assignment": result.assignment, "digest": result.digest, "questions": [a.to_dict() for a in answers]},
            indent=2,
        )
        + "\n",
    )
    messages = []
    if pdf:
        why = print_pdf(paths["html"], out / "report.pdf")
        if why:
            messages.append(why)
        else:
            paths["pdf"] = out / "report.pdf"
    return paths, messages


def attach(
    result: GradeResult,
    submission: Path,
    assignment: str,
    *,
    kit: Path,
    out: Path,
    pdf: bool = False,
    dataset: str | None = None,
    isolation: str = "auto",
    allow_weak_sandbox: bool = False,
    budget: float | None = None,
    kernels_ahead: bool | None = None,
) -> list[str]:
    """`grader grade --report`: run the submission's notebooks in the sandbox, write the report into `out`, and
    record the answers and the notebooks' outcome in `result.notebooks` (results.json's extra_data). Returns
    lines for the terminal. Nothing here changes the score, and a failure here is reported, never raised.
    `kernels_ahead`: start each next notebook's kernel while the one before runs (None: where there is room;
    grader.notebooks.execute)."""
    try:
        return _attach(
            result,
            submission,
            assignment,
            kit=kit,
            out=out,
            pdf=pdf,
            dataset=dataset,
            isolation=isolation,
            allow_weak_sandbox=allow_weak_sandbox,
            budget=budget,
            kernels_ahead=kernels_ahead,
        )
    except Exception as e:
        why = f"{type(e).__name__}: {str(e)[:500]}"
        result.notebooks = {"error": f"the notebook report could not be made ({why})"}
        return [f"The notebook report could not be made ({why}). The grade above stands."]


def _attach(
    result: GradeResult,
    submission: Path,
    assignment: str,
    *,
    kit: Path,
    out: Path,
    pdf: bool,
    dataset: str | None,
    isolation: str,
    allow_weak_sandbox: bool,
    budget: float | None = None,
    kernels_ahead: bool | None = None,
) -> list[str]:
    from grader.course import manifest as manifests
    from grader.course.intake import stage
    from grader.judge.opening import choose_isolation
    from grader.notebooks.answers import find_answers, questions
    from grader.notebooks.execute import execute_notebooks

    t0 = time.perf_counter()
    m = manifests.load(assignment, kit)
    qs = questions(m)
    chosen = choose_isolation(isolation, hidden=result.hidden, allow_weak=allow_weak_sandbox)
    with tempfile.TemporaryDirectory(prefix="grader-report-") as tmp:
        staged = stage(m, kit, Path(submission), Path(tmp) / "kit")
        problems = dict(getattr(staged, "notebook_problems", {}) or {})
        if staged.refused:
            problems = dict.fromkeys(m.notebooks, f"the submission was not taken in: {staged.refused}")
        notebooks = {} if staged.refused else dict(staged.notebooks)
        runs = execute_notebooks(
            m,
            staged.root,
            notebooks,
            chosen,
            problems=problems,
            dataset=dataset,
            device=result.device,
            hide=[str(kit)],
            budget=None if budget is None else budget - (time.perf_counter() - t0),
            ahead=kernels_ahead,
        )
        notebooks_digest = _hash_notebooks(notebooks)
    executed = {r.path: r.nb for r in runs if r.nb is not None}
    answers = find_answers(qs, executed, kit, {r.path: r.message for r in runs})
    run_seconds = time.perf_counter() - t0
    meta = {
        "Assignment": f"{result.assignment}: {result.title}",
        "Submission": Path(result.submission).name or str(result.submission),
        "Content hash (graded files)": result.digest,
        "Content hash (notebooks)": notebooks_digest,
        "Graded at": result.started_at,
        "Device": result.device,
        "Data set (checks)": result.dataset,
        "Data set (notebooks)": dataset or "digits (offline)",
        "Grader version": result.grader_version,
        "Sandbox": chosen.detail,
    }
    t1 = time.perf_counter()
    paths, messages = write_report(result, m, runs, answers, out, meta=meta, pdf=pdf)
    result.notebooks = {
        "report": "report.html",
        "answers": [a.to_dict() for a in answers],
        "notebooks": [r.summary() for r in runs],
        "seconds": {"execute": round(run_seconds, 3), "render": round(time.perf_counter() - t1, 3)},
    }
    lines = [f"Report: {', '.join(str(p) for p in paths.values())}"]
    for r in runs:
        if r.status != "ran":
            lines.append(f"  {r.path}: {r.message}")
        elif r.cells:
            lines.append(f"  {r.path}: {len(r.cells)} cell(s) raised, timed out or were not run (see the report)")
    unanswered = [a.id for a in answers if a.status != "answered"]
    if unanswered:
        lines.append(f"  unanswered or missing questions: {', '.join(unanswered)}")
    return lines + messages


def check_manifest(m: Manifest) -> None:
    """Raise GraderError when the manifest's questions or notebook limits are malformed."""
    from grader.notebooks.answers import questions
    from grader.notebooks.execute import limits

    questions(m)
    limits(m)


__all__ = [
    "GraderError",
    "attach",
    "build_notebook",
    "check_manifest",
    "print_pdf",
    "render_html",
    "write_report",
]
