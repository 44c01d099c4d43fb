"""Renderers over a GradeResult: terminal table, Gradescope results.json, JUnit XML, Markdown.

Text in a result can come from student code (exception messages, printed output, file and entry names),
so every renderer first passes the whole result through `clean_text` (no control characters or terminal
escape sequences, no lone surrogates, nothing XML 1.0 forbids), then escapes for its format: Markdown gets
student text in indented code blocks and escaped inline text, so it cannot close a block, forge a heading
or a table row, or inject HTML. Files are written atomically (a temporary file in the same folder, then
`os.replace`), so a reader never sees half a report and a link planted at a report's path is replaced,
not written through.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from grader.judge.results import GradeResult

# -- sanitising -------------------------------------------------------------------------------------------------

_ESCAPES = re.compile(
    r"""
      \x1b\[[0-?]*[ -/]*[@-~]?                 # CSI: colours, cursor moves, clearing the screen
    | \x1b[\]PX^_][^\x07\x1b\x9c\n]*(?:\x07|\x1b\\|\x9c)?   # OSC (window title, links), DCS, SOS, PM, APC
    | \x1b[ -/]*[0-~]?                        # any other escape sequence (ESC c resets the terminal)
    | \x9b[0-?]*[ -/]*[@-~]?                  # CSI in its 8-bit form
    | [\x90\x9d\x98\x9e\x9f][^\x07\x1b\x9c\n]*(?:\x07|\x1b\\|\x9c)?   # 8-bit OSC, DCS, SOS, PM, APC
""",
    re.VERBOSE,
)
# C0 and C1 controls but tab and newline; bidirectional overrides and isolates (text that displays reversed);
# the noncharacters XML forbids. Lone surrogates are replaced, not dropped, so the reader sees something was there.
_DROP = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ufffe\uffff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text: Any) -> str:
    """`text` as printable text: terminal escape sequences and control characters removed (tab and newline
    kept; \\r\\n and \\r become newlines), lone surrogates replaced by U+FFFD, and nothing XML 1.0 forbids."""
    text = text if isinstance(text, str) else str(text)
    text = _SURROGATE.sub("\ufffd", text)
    text = _ESCAPES.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    return _DROP.sub("", text)


def clean_result(value: Any) -> Any:
    """A copy of `value` (a GradeResult, or anything inside one) with every string passed through clean_text."""
    if isinstance(value, str):
        return clean_text(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(
            value, **{f.name: clean_result(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init}
        )
    if isinstance(value, dict):
        return {clean_result(k): clean_result(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_result(v) for v in value]
    if isinstance(value, tuple):
        items = [clean_result(v) for v in value]
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
    return value


# characters Markdown or HTML would read; "_" inside a word (snake_case) is left alone, as GitHub reads it literally
_MD_ESCAPED = re.compile(r"([\\`*{}\[\]<>#|~&!$]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")


def md_inline(text: str) -> str:
    """Text for one line of Markdown (a table cell, a quote): every character Markdown or HTML would read
    escaped, and line breaks shown as <br>."""
    return "<br>".join(_MD_ESCAPED.sub(r"\\\1", line) for line in clean_text(text).split("\n"))


def md_block(text: str) -> str:
    """Text as an indented code block: every line starts with four spaces, so nothing in it (a fence, a
    heading, HTML) is read as Markdown and no line of it can end the block. Needs a blank line before it."""
    return "\n".join("    " + line if line.strip() else "" for line in clean_text(text).split("\n"))


def md_code(text: str) -> str:
    """Text as inline code, fenced by more backticks than any run inside it."""
    text = clean_text(text).replace("\n", " ")
    longest = max((len(run) for run in re.findall("`+", text)), default=0)
    if not longest:
        return f"`{text}`"
    fence = "`" * (longest + 1)
    return f"{fence} {text} {fence}"


def _pts(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".")


def gradescope(result: GradeResult) -> dict:
    """Gradescope's results.json schema (score, execution_time, output, tests[] ...)."""
    result = clean_result(result)
    lines = [
        f"{result.title}: {_pts(result.score)} / {_pts(result.max_score)}",
        f"Data set: {result.dataset}. Device: {result.device}.",
    ]
    lines += result.problems
    late = sum(c.out_of_time for c in result.checks)
    if late:
        lines.append(
            f"{late} check(s) could not be judged: the time allowed for grading this submission ran out (see each "
            "check's feedback; the checks that took the time come before them)."
        )
    tests = [
        {
            "name": f"{c.title} [{c.id}]",
            "number": c.number,
            "score": round(c.score, 6),
            "max_score": round(c.max_score, 6),
            "status": "passed" if c.passed else "failed",  # the schema's two (a grader error: 0 / 0, said so)
            "visibility": c.visibility,
            "output": c.output + (f"\n(seed {c.seed})" if c.status == "failed" else ""),
        }
        for c in result.checks
    ]
    return {
        "score": round(sum(t["score"] for t in tests), 4),  # what the tests add up to, as shown
        "execution_time": round(result.execution_time, 3),
        "output": "\n".join(lines),
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": tests,
        "extra_data": {
            "assignment": result.assignment,
            "dataset": result.dataset,
            "device": result.device,
            "hidden_checks_included": result.hidden,
            "digest": result.digest,
            "grader_version": result.grader_version,
            "started_at": result.started_at,
            # drawn for this run, after which it tells nothing: replays the run's inputs (grader grade --seed-secret)
            "seed_secret": result.seed_secret,
            "sandbox": result.sandbox,
            "parts": [dataclasses.asdict(p) for p in result.parts],
            # each check's wall time (the judge's work and its calls into the sandbox), of which inside calls of
            # student code (call_seconds: the student's code and the guard around it), and whether the grading's
            # time budget ran out on it: for the staff, the class report and the platform's clock; and what its
            # feedback says as data (grader.judge.results.CheckResult): the known mistakes it names, the grader's
            # own errors, the rule hits. Readers of results.json use these, never the feedback's words
            "checks": [
                {
                    "id": c.id,
                    "seconds": round(c.seconds, 3),
                    "call_seconds": round(c.call_seconds, 3),
                    "out_of_time": c.out_of_time,
                    "held_out": c.held_out,  # a check that crashed: its points, out of the total until a regrade
                    "mistakes": list(c.mistakes),
                    "grader_errors": list(c.grader_errors),
                    "rule_hits": [dict(h) for h in c.rule_hits],
                }
                for c in result.checks
            ],
            **({"notebooks": result.notebooks} if result.notebooks else {}),
        },  # grader.notebooks.report
    }


def junit(result: GradeResult) -> str:
    """JUnit XML that the Ant JUnit schema accepts (windyroad/JUnit-Schema's JUnit.xsd, which CI tools validate
    against; a copy is tests/grader/JUnit.xsd). Its rules, and what follows from them:

    - the root is `testsuites`, with no attributes; a `testsuite` in it needs the aggregated document's `package`
      (the assignment) and `id` (0), and every suite needs `timestamp` (no zone allowed: ours is UTC) and
      `hostname` ('localhost' where unknown);
    - a suite holds `properties`, the testcases, then `system-out` and `system-err`, all four required in that order;
    - a testcase holds at most one `failure`, `error` or `skipped` and nothing else, and a `failure` needs a `type`:
      so a failed check is a `failure` (type `failed`, or `out of time` when the grading's time budget ran out on
      it) holding its feedback, and the feedback of a passed check and the submission's problems (a missing file,
      a syntax error) go in the suite's `system-out`, each under its check id.
    """
    import datetime as dt
    import math
    import socket

    result = clean_result(result)  # no character XML 1.0 forbids, so the file always parses

    def seconds(x: Any) -> str:  # xs:decimal
        return f"{x:.3f}" if isinstance(x, (int, float)) and math.isfinite(x) and x >= 0 else "0.000"

    def token(text: Any, default: str) -> str:  # xs:token of at least one character
        return " ".join(clean_text(text).split()) or default

    try:
        started = dt.datetime.fromisoformat(result.started_at)
        started = started.astimezone(dt.UTC) if started.tzinfo else started
    except (TypeError, ValueError):
        started = dt.datetime.now(dt.UTC)
    try:
        host = socket.gethostname()
    except OSError:
        host = ""
    failures = [c for c in result.checks if c.status == "failed"]
    errors = [c for c in result.checks if c.status == "error"]
    name = token(result.assignment, "assignment")
    suite = ET.Element(
        "testsuite",
        name=name,
        timestamp=started.replace(tzinfo=None, microsecond=0).isoformat(),
        hostname=token(host, "localhost"),
        tests=str(len(result.checks)),
        failures=str(len(failures)),
        errors=str(len(errors)),
        skipped="0",
        time=seconds(result.execution_time),
        package=name,
        id="0",
    )
    props = ET.SubElement(suite, "properties")
    for k, v in (
        ("score", _pts(result.score)),
        ("max_score", _pts(result.max_score)),
        ("dataset", result.dataset),
        ("device", result.device),
    ):
        ET.SubElement(props, "property", name=k, value=v)
    for c in result.checks:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=token(f"{result.assignment}.{c.part}", name),
            name=token(c.id, "check"),
            time=seconds(c.seconds),
        )
        if c.status == "error":  # the schema's "problem with the implementation of the test": the check crashed
            f = ET.SubElement(case, "error", message=c.output.splitlines()[0][:200], type="grader error")
            f.text = c.output
        elif not c.passed:
            f = ET.SubElement(
                case,
                "failure",
                message=c.output.splitlines()[0][:200] if c.output.strip() else "failed",
                type="out of time" if getattr(c, "out_of_time", False) else "failed",
            )
            f.text = c.output
    out = [f"[problem] {p}" for p in result.problems]
    out += [f"[{c.id}] {c.output}" for c in result.checks if c.passed and c.output]
    ET.SubElement(suite, "system-out").text = "\n".join(out)
    ET.SubElement(suite, "system-err")
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def markdown(result: GradeResult) -> str:
    """summary.md: student text only as escaped inline text or in indented code blocks."""
    result = clean_result(result)
    lines = [
        f"## {md_inline(result.title)}: {_pts(result.score)} / {_pts(result.max_score)}",
        "",
        f"Data set: {md_code(result.dataset)} · device: {md_code(result.device)} · "
        f"{'public and hidden' if result.hidden else 'public'} checks · {result.execution_time:.1f} s",
        "",
    ]
    for p in result.problems:
        lines.append(f"> ⚠️ {md_inline(p.strip())}")
    if result.problems:
        lines.append("")
    lines += ["| # | check | points | result |", "|---|---|---:|---|"]
    for c in result.checks:
        lines.append(
            f"| {md_inline(c.number)} | {md_inline(c.title)} | {_pts(c.score)} / {_pts(c.max_score)} | "
            f"{'✅ passed' if c.passed else '❌ failed' if c.status == 'failed' else '⚠️ not judged (grader error)'} |"
        )
    failed = [c for c in result.checks if not c.passed]
    if failed:
        lines += ["", "### What to fix", ""]
        for c in failed:
            lines += [
                f"**{md_inline(c.number)} {md_inline(c.title)}** ({md_code(c.id)})",
                "",
                md_block(c.output.strip("\n") or "failed"),
                "",
            ]
    return "\n".join(lines) + "\n"


def table(result: GradeResult, color: bool = False, width: int | None = None) -> str:
    """The terminal table: one line per check, feedback indented under failures. Student text is cleaned of
    escape sequences and control characters; the only colours are ours."""
    result = clean_result(result)
    width = width or min(shutil.get_terminal_size((100, 20)).columns, 120)
    green, red, bold, reset = ("\033[32m", "\033[31m", "\033[1m", "\033[0m") if color else ("", "", "", "")
    name_w = max(20, width - 26)
    out = [
        f"{bold}{result.title}{reset}  (data set: {result.dataset}, device: {result.device}, "
        f"{'public + hidden' if result.hidden else 'public'} checks)"
    ]
    for p in result.problems:
        out.append("  ! " + "\n    ".join(p.strip("\n").split("\n")))
    part = None
    for c in result.checks:
        if c.part != part:
            part = c.part
            pr = next((p for p in result.parts if p.name == part), None)
            if pr:
                out.append(f"{bold}{pr.title}{reset}  {_pts(pr.score)} / {_pts(pr.max_score)}")
        mark = f"{green}PASS{reset}" if c.passed else f"{red}FAIL{reset}" if c.status == "failed" else "NOT JUDGED"
        title = c.title if len(c.title) <= name_w else c.title[: name_w - 1] + "…"
        out.append(f"  {c.number:>5} {title:<{name_w}} {_pts(c.score):>6}/{_pts(c.max_score):<6} {mark}")
        if c.output and (not c.passed or c.output):
            for line in c.output.splitlines()[:12]:
                out.append(f"          {line}")
    out.append(f"{bold}Total: {_pts(result.score)} / {_pts(result.max_score)}{reset}  ({result.execution_time:.1f} s)")
    return "\n".join(out)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: Path, text: str) -> None:
    """Replace `path` by a file holding `text` (UTF-8): written to a temporary file in the same folder, then
    renamed over it. A reader never sees half a file; a link at `path` is replaced, not written through."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # what a plain open() would have made
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_all(result: GradeResult, out: Path) -> dict[str, Path]:
    """Write results.json, junit.xml and summary.md into `out`, each atomically; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "results.json", "junit": out / "junit.xml", "markdown": out / "summary.md"}
    texts = {
        "json": json.dumps(gradescope(result), indent=2, default=str) + "\n",  # ASCII only: \u escapes
        "junit": junit(result),
        "markdown": markdown(result),
    }  # all rendered before any is written
    for key in ("junit", "markdown", "json"):  # results.json, the record, last
        write_atomic(paths[key], texts[key])
    return paths
