"""`DIR/class.html`: one self-contained page on how a class did, for staff deciding what to re-teach.

The score histogram and each part's distribution (inline SVG), every check's failure rate across the class with
the likely bugs its feedback named (most common first), the grader's own errors and the rules broken, and its wall
time (median and max, and how often the grading's time budget ran out on it), and a row per student linking to
their report. What a check's feedback named is read from results.json's data (extra_data.checks: mistakes,
grader_errors, rule_hits), never from the feedback's words. Every text that came from a submission (feedback
quotes student output and exceptions) is cleaned and escaped.
"""

from __future__ import annotations

import html
import io
import json
import re
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

from grader.course.manifest import Manifest
from grader.notebooks.sanitise import CSP
from grader.reports.formats import clean_text, write_atomic

NUMBER = re.compile(r"(?<![A-Za-z_])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")
TOP_BUGS = 4


def _e(text: Any) -> str:
    return html.escape(clean_text(text), quote=True)


def _svg(fig: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    text = buf.getvalue()
    return text[text.index("<svg") :]


def histogram_svg(totals: list[float], top: float) -> str:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 2.8))
    ax = fig.add_subplot()
    bins = [top * i / 20 for i in range(21)] if top > 0 else 10
    ax.hist(totals, bins=bins, color="#3b6ea8", edgecolor="white")
    ax.set_xlabel(f"total score (out of {top:g})")
    ax.set_ylabel("students")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_xlim(0, top or None)
    ax.spines[["top", "right"]].set_visible(False)
    return _svg(fig)


def parts_svg(m: Manifest, per_part: dict[str, list[float]]) -> str:
    from matplotlib.figure import Figure

    names = [p.name for p in m.parts]
    data = [[100 * v / p.points for v in per_part.get(p.name, [])] if p.points else [] for p in m.parts]
    fig = Figure(figsize=(7, 0.6 + 0.45 * len(names)))
    ax = fig.add_subplot()
    ax.boxplot([d or [0.0] for d in data], orientation="horizontal", tick_labels=names, showmeans=True, widths=0.6)
    ax.set_xlabel("points earned, % of the part")
    ax.set_xlim(-2, 102)
    ax.invert_yaxis()
    ax.spines[["top", "right"]].set_visible(False)
    return _svg(fig)


def _check_titles(m: Manifest, kit: Path, hidden: bool) -> dict[str, tuple[str, str, str]]:
    """check id -> (title, function, part), in grading order (from the checks themselves)."""
    from grader.judge.loading import load_checks

    try:
        specs = load_checks(m, hidden)
    except Exception:  # a report is still written from what results.json says
        return {}
    return {s.id: (s.title, s.function, m.part_of(s.function).name) for s in specs}


def _strings(value: Any) -> list[str]:
    """The non-empty strings of a list read from results.json, once each (anything else is ignored)."""
    items = value if isinstance(value, list) else []
    return list(dict.fromkeys(v.strip() for v in items if isinstance(v, str) and v.strip()))


def named_bugs(check: dict) -> list[str]:
    """The likely bugs a check's feedback named: its `mistakes` in results.json's extra_data.checks."""
    return _strings(check.get("mistakes"))


def grader_errors(check: dict) -> list[str]:
    """The grader's own errors in a check (the check crashed): its `grader_errors`, first line of each."""
    return list(dict.fromkeys(e.splitlines()[0][:200] for e in _strings(check.get("grader_errors"))))


def rules_broken(check: dict) -> list[str]:
    """The rules a check found broken, one phrase per rule and name: `uses torch.cdist`, `too many loops`."""
    said = []
    for h in check.get("rule_hits") if isinstance(check.get("rule_hits"), list) else []:
        if not isinstance(h, dict) or not isinstance(h.get("name"), str):
            continue
        rule = h.get("rule")
        if rule == "loops":
            said.append("too many loops")
        elif rule == "guard":
            said.append("removed or disabled the grader's guard")
        else:
            said.append(f"uses {h['name']}")
    return list(dict.fromkeys(said))


def feedback_gist(output: str, function: str) -> str:
    """The first line of a failure, numbers masked, so the same problem in two submissions reads the same."""
    line = next((x.strip() for x in clean_text(output).splitlines() if x.strip()), "failed")
    if function and line.startswith(f"{function}: "):
        line = line[len(function) + 2 :]
    return NUMBER.sub("#", line)[:200]


def _timing(c: dict) -> str:
    """A check's wall time over the class (median, max) and how often the grading's time ran out on it."""
    if not c["seconds"]:
        return "-"
    text = f"{statistics.median(c['seconds']):.1f}, {max(c['seconds']):.1f}"
    return text + (f"<br><span class='n'>out of time: {c['late']}</span>" if c["late"] else "")


def _name_and_id(test_name: str) -> tuple[str, str]:
    m = re.match(r"(.*) \[([^\]]+)\]$", test_name)
    return (m.group(1), m.group(2)) if m else (test_name, test_name)


def write_class_report(
    out: Path, m: Manifest, subs: list, records: dict[str, dict], kit: Path, *, hidden: bool = False, similar: int = 0
) -> Path:
    titles = _check_titles(m, kit, hidden)
    order = {cid: i for i, cid in enumerate(titles)}
    checks: dict[str, dict] = {}
    totals: list[float] = []
    per_part: dict[str, list[float]] = {}
    students = []
    for s in subs:
        r = records.get(s.slug)
        status = r["status"] if r else "pending"
        students.append((s, r, status))
        if not r or status != "graded":
            continue
        totals.append(float(r.get("score") or 0.0))
        for name, pts in (r.get("parts") or {}).items():
            per_part.setdefault(name, []).append(float(pts))
        try:
            data = json.loads((out / s.slug / "results.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        info = {str(c.get("id")): c for c in (data.get("extra_data") or {}).get("checks") or [] if isinstance(c, dict)}
        timing = {cid: c for cid, c in info.items() if isinstance(c.get("seconds"), (int, float))}
        for t in data.get("tests", []):
            title, cid = _name_and_id(str(t.get("name", "")))
            title, function, part = titles.get(cid, (title, "", ""))
            c = checks.setdefault(
                cid,
                {
                    "title": title,
                    "function": function,
                    "part": part,
                    "n": 0,
                    "failed": 0,
                    "bugs": Counter(),
                    "errors": Counter(),
                    "rules": Counter(),
                    "gists": Counter(),
                    "seconds": [],
                    "late": 0,
                },
            )
            c["n"] += 1
            if cid in timing:  # each check's wall time, and whether the grading's time ran out on it
                c["seconds"].append(float(timing[cid]["seconds"]))
                c["late"] += bool(timing[cid].get("out_of_time"))
            if t.get("status") != "passed":
                c["failed"] += 1
                said = info.get(cid, {})
                bugs, errors, rules = named_bugs(said), grader_errors(said), rules_broken(said)
                c["bugs"].update(bugs)
                c["errors"].update(errors)
                c["rules"].update(rules)
                if not (bugs or errors or rules):
                    c["gists"][feedback_gist(str(t.get("output", "")), function)] += 1
    counts = Counter(st for _, _, st in students)
    top = m.points
    page = [
        f"<!doctype html><html lang='en'><head><meta http-equiv='Content-Security-Policy' content=\"{CSP}\">"
        f"<meta charset='utf-8'><title>{_e(m.title)}: class report</title>"
        f"<style>{CSS}</style></head><body>",
        f"<h1>{_e(m.title)}: class report</h1>",
        "<p class='meta'>"
        + " · ".join(f"{n} {k}" for k, n in [("submissions", len(subs)), *sorted(counts.items())])
        + (
            f" · mean {statistics.mean(totals):.1f}, median {statistics.median(totals):.1f} of {top:g}"
            if totals
            else ""
        )
        + (f" · <a href='similarity.csv'>{similar} pair(s) of unusually alike submissions</a>" if similar else "")
        + "</p>",
    ]
    page.append(
        "<h2>Scores</h2><figure id='histogram'>"
        + (histogram_svg(totals, top) if totals else "<p>No submission graded yet.</p>")
        + "</figure>"
    )
    page.append("<h2>By part</h2><figure id='parts'>" + (parts_svg(m, per_part) if totals else "") + "</figure>")
    page.append(
        "<h2>Checks, most failed first</h2><table id='failures'><thead><tr><th>check</th><th>function</th>"
        "<th>failed</th><th>rate</th><th>seconds (median, max)</th>"
        "<th>what the feedback said, most common first</th></tr></thead><tbody>"
    )
    ranked = sorted(
        checks.items(), key=lambda kv: (-kv[1]["failed"] / max(kv[1]["n"], 1), order.get(kv[0], len(order)), kv[0])
    )
    for cid, c in ranked:
        rate = c["failed"] / max(c["n"], 1)
        said = [
            f"<li class='err'>Grader error: {_e(b)} <span class='n'>({n})</span></li>"
            for b, n in c["errors"].most_common(TOP_BUGS)
        ]
        said += [
            f"<li class='bug'>Likely bug: {_e(b)} <span class='n'>({n})</span></li>"
            for b, n in c["bugs"].most_common(TOP_BUGS)
        ]
        said += [f"<li>Rule: {_e(b)} <span class='n'>({n})</span></li>" for b, n in c["rules"].most_common(TOP_BUGS)]
        said += [
            f"<li>{_e(g)} <span class='n'>({n})</span></li>"
            for g, n in c["gists"].most_common(max(TOP_BUGS - len(said), 1 if not said else 0))
        ]
        page.append(
            f"<tr class='{'bad' if rate >= 0.5 else 'some' if rate > 0 else 'ok'}'>"
            f"<td>{_e(c['title'])}<br><code>{_e(cid)}</code></td><td><code>{_e(c['function'])}</code></td>"
            f"<td>{c['failed']} / {c['n']}</td><td>{100 * rate:.0f}%"
            f"<div class='bar'><span style='width:{100 * rate:.0f}%'></span></div></td>"
            f"<td>{_timing(c)}</td>"
            f"<td><ul>{''.join(said)}</ul></td></tr>"
        )
    page.append("</tbody></table>")
    page.append(
        "<h2>Students</h2><table id='students'><thead><tr><th>student</th><th>name</th><th>score</th>"
        "<th>status</th><th>report</th></tr></thead><tbody>"
    )
    for s, r, status in students:
        files = (r or {}).get("files", [])
        link = next((f for f in files if f.endswith(".html")), "summary.md" if "summary.md" in files else "")
        score = f"{r.get('score', 0):.2f} / {r.get('max_score', top):g}" if r and r.get("max_score") else ""
        names = ", ".join(st.name for st in s.students if st.name)
        err = f"<br><span class='err'>{_e(r.get('error', ''))}</span>" if r and r.get("error") else ""
        anchor = f"<a href={_q(s.slug + '/' + link)}>{_e(link)}</a>" if link else ""
        page.append(
            f"<tr><td>{_e(s.id)}</td><td>{_e(names)}</td><td>{score}</td><td>{_e(status)}{err}</td>"
            f"<td>{anchor}</td></tr>"
        )
    page.append("</tbody></table></body></html>\n")
    path = out / "class.html"
    write_atomic(path, "\n".join(page))
    return path


def _q(href: str) -> str:
    from urllib.parse import quote

    return "'" + html.escape(quote(href), quote=True) + "'"


CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em}.meta{color:#555}
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #ddd;padding:.35em .5em;
text-align:left;vertical-align:top}th{background:#f4f4f4}code{font-size:.9em}
ul{margin:0;padding-left:1.1em}.n{color:#777}.bug{color:#7a2d00}.err{color:#a00;font-size:.9em}
.bar{background:#eee;height:6px;width:80px;margin-top:3px}.bar span{display:block;height:6px;background:#c0392b}
tr.ok .bar span{background:#27ae60}figure{margin:0}svg{max-width:100%;height:auto}
"""
