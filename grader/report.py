"""Renderers over a GradeResult: terminal table, Gradescope results.json, JUnit XML, Markdown."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

from grader.results import GradeResult


def _pts(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".")


def gradescope(result: GradeResult) -> dict:
    """Gradescope's results.json schema (score, execution_time, output, tests[] ...)."""
    lines = [f"{result.title}: {_pts(result.score)} / {_pts(result.max_score)}",
             f"Data set: {result.dataset}. Device: {result.device}."]
    lines += result.problems
    tests = [
        {"name": f"{c.title} [{c.id}]", "number": c.number, "score": round(c.score, 6),
         "max_score": round(c.max_score, 6), "status": c.status, "visibility": c.visibility,
         "output": c.output + (f"\n(seed {c.seed})" if c.status == "failed" else "")}
        for c in result.checks
    ]
    return {
        "score": round(sum(t["score"] for t in tests), 4),   # what the tests add up to, as shown
        "execution_time": round(result.execution_time, 3),
        "output": "\n".join(lines),
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": tests,
        "extra_data": {"assignment": result.assignment, "dataset": result.dataset, "device": result.device,
                       "hidden_checks_included": result.hidden, "digest": result.digest,
                       "grader_version": result.grader_version, "started_at": result.started_at,
                       "sandbox": result.sandbox, "parts": [p.__dict__ for p in result.parts]},
    }


def junit(result: GradeResult) -> str:
    failures = sum(1 for c in result.checks if not c.passed)
    suite = ET.Element("testsuite", name=result.assignment, tests=str(len(result.checks)),
                       failures=str(failures), errors="0", time=f"{result.execution_time:.3f}")
    props = ET.SubElement(suite, "properties")
    for k, v in (("score", _pts(result.score)), ("max_score", _pts(result.max_score)),
                 ("dataset", result.dataset), ("device", result.device)):
        ET.SubElement(props, "property", name=k, value=v)
    for c in result.checks:
        case = ET.SubElement(suite, "testcase", classname=f"{result.assignment}.{c.part}", name=c.id,
                             time=f"{c.seconds:.3f}")
        if not c.passed:
            f = ET.SubElement(case, "failure", message=c.output.splitlines()[0][:200] if c.output else "failed")
            f.text = c.output
        elif c.output:
            ET.SubElement(case, "system-out").text = c.output
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def markdown(result: GradeResult) -> str:
    lines = [f"## {result.title}: {_pts(result.score)} / {_pts(result.max_score)}", "",
             f"Data set: `{result.dataset}` · device: `{result.device}` · "
             f"{'public and hidden' if result.hidden else 'public'} checks · {result.execution_time:.1f} s", ""]
    for p in result.problems:
        lines.append(f"> ⚠️ {p}")
    if result.problems:
        lines.append("")
    lines += ["| # | check | points | result |", "|---|---|---:|---|"]
    for c in result.checks:
        lines.append(f"| {c.number} | {c.title} | {_pts(c.score)} / {_pts(c.max_score)} | "
                     f"{'✅ passed' if c.passed else '❌ failed'} |")
    failed = [c for c in result.checks if not c.passed]
    if failed:
        lines += ["", "### What to fix", ""]
        for c in failed:
            lines += [f"**{c.number} {c.title}** (`{c.id}`)", "", "```", c.output.strip() or "failed", "```", ""]
    return "\n".join(lines) + "\n"


def table(result: GradeResult, color: bool = False, width: int | None = None) -> str:
    """The terminal table: one line per check, feedback indented under failures."""
    width = width or min(shutil.get_terminal_size((100, 20)).columns, 120)
    green, red, bold, reset = ("\033[32m", "\033[31m", "\033[1m", "\033[0m") if color else ("", "", "", "")
    name_w = max(20, width - 26)
    out = [f"{bold}{result.title}{reset}  (data set: {result.dataset}, device: {result.device}, "
           f"{'public + hidden' if result.hidden else 'public'} checks)"]
    for p in result.problems:
        out.append(f"  ! {p}")
    part = None
    for c in result.checks:
        if c.part != part:
            part = c.part
            pr = next((p for p in result.parts if p.name == part), None)
            if pr:
                out.append(f"{bold}{pr.title}{reset}  {_pts(pr.score)} / {_pts(pr.max_score)}")
        mark = f"{green}PASS{reset}" if c.passed else f"{red}FAIL{reset}"
        title = c.title if len(c.title) <= name_w else c.title[: name_w - 1] + "…"
        out.append(f"  {c.number:>5} {title:<{name_w}} {_pts(c.score):>6}/{_pts(c.max_score):<6} {mark}")
        if c.output and (not c.passed or c.output):
            for line in c.output.splitlines()[:12]:
                out.append(f"          {line}")
    out.append(f"{bold}Total: {_pts(result.score)} / {_pts(result.max_score)}{reset}  "
               f"({result.execution_time:.1f} s)")
    return "\n".join(out)


def write_all(result: GradeResult, out: Path) -> dict[str, Path]:
    """Write results.json, junit.xml and summary.md into `out`; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "results.json", "junit": out / "junit.xml", "markdown": out / "summary.md"}
    paths["json"].write_text(json.dumps(gradescope(result), indent=2) + "\n")
    paths["junit"].write_text(junit(result))
    paths["markdown"].write_text(markdown(result))
    return paths
