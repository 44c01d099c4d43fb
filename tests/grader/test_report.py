"""Reports: whatever student code put in a result, every file stays valid for its format and says only ours."""

import json
import os
import re
import xml.etree.ElementTree as ET

import pytest

from grader.judge.results import CheckResult, GradeResult, PartResult
from grader.reports import formats as report
from tests.grader.gradescope_schema import validate

# what a student's exception message can carry
HOSTILE = (
    "\udcff lone surrogate \x00 NUL \x1b[2J\x1b[H cleared \x1b]0;title\x07 osc \x9b31m c1 \r overwritten "
    "\x08\x08 back \ufffe\uffff \u202e reversed \x0b\x0c\n"
    "```\n## A1: PyTorch warm-up: 100 / 100\n```\n"
    "~~~\n## forged ~~~\n<script>alert(1)</script> <img src=x onerror=alert(1)>\n"
    "| 9.9 | forged row | 100 / 100 | ✅ passed |\n"
    "    ```` four backticks\n=====\n"
)


def result(output=HOSTILE, problems=(HOSTILE,), title="A1: PyTorch warm-up") -> GradeResult:
    checks = [
        CheckResult(
            id="a1.warmup.pi",
            title="create_tensor_of_pi returns pi",
            function="create_tensor_of_pi",
            part="warmup",
            number="1.1",
            score=0.0,
            max_score=3.0,
            status="failed",
            visibility="visible",
            hidden=False,
            output=output,
            seed=1,
            seconds=0.5,
        ),
        CheckResult(
            id="a1.warmup.count",
            title="count | elements",
            function="count_tensor_elements",
            part="warmup",
            number="1.2",
            score=3.0,
            max_score=3.0,
            status="passed",
            visibility="visible",
            hidden=False,
            output=output,
            seed=2,
            seconds=0.1,
        ),
    ]
    return GradeResult(
        assignment="a1_knn",
        title=title,
        score=3.0,
        max_score=6.0,
        checks=checks,
        parts=[PartResult("warmup", "PyTorch warm-up", 3.0, 6.0)],
        execution_time=1.5,
        dataset="digits",
        device="cpu",
        hidden=False,
        submission="sub\x1b[2J\udcff",
        digest="abc",
        problems=list(problems),
        sandbox={"user": "x\udcff\x00"},
    )


FORBIDDEN_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


# -- the sanitisers, one by one -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, clean",
    [
        ("plain text\twith tab\nand lines", "plain text\twith tab\nand lines"),
        ("\x1b[31mred\x1b[0m", "red"),
        ("\x1b[2J\x1b[Hcleared", "cleared"),
        ("\x1b]0;title\x07after", "after"),
        ("\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", "link"),
        ("\x1bcreset", "reset"),
        ("\x9b31mc1 csi", "c1 csi"),
        ("a\x00b\x08c\x7fd\x0be", "abcde"),
        ("windows\r\nline\rsplit", "windows\nline\nsplit"),
        ("\udcff\ud800", "\ufffd\ufffd"),
        ("\ufffe\uffff", ""),
        ("\u202eesrever\u202c \u2066iso\u2069", "esrever iso"),
        ("émoji ✅ 😀", "émoji ✅ 😀"),
    ],
)
def test_clean_text_keeps_only_printable_text(text, clean):
    assert report.clean_text(text) == clean


def test_md_inline_escapes_what_markdown_and_html_would_read():
    out = report.md_inline("a | b <b>x</b> *y* _z_ [l](u) `c` # h & &amp; ~s~ !\\ \nnext")
    assert "|" not in out.replace("\\|", "")
    assert not re.search(r"(?<!\\)<(?!br>)", out) and "`" not in out.replace("\\`", "")
    assert "\n" not in out and "&amp;" not in out.replace("\\&amp;", "")


def test_md_block_cannot_be_closed_by_its_content():
    block = report.md_block("```\n## forged\n~~~\n\n<b>x</b>")
    assert all(line == "" or line.startswith("    ") for line in block.split("\n"))


def test_md_code_uses_a_longer_fence_than_its_content():
    assert report.md_code("a`b``c") == "``` a`b``c ```"
    assert report.md_code("plain") == "`plain`"


# -- every writer, on a hostile result ------------------------------------------------------------------------


def test_junit_always_parses():
    text = report.junit(result())
    assert not FORBIDDEN_XML.search(text)
    root = ET.fromstring(text.encode("utf-8"))
    failure = root.find("testsuite/testcase/failure")
    assert "cleared" in failure.text and "\x1b" not in failure.text and "\x1b" not in failure.get("message")


def test_results_json_is_valid_utf8_json():
    data = report.gradescope(result())
    text = json.dumps(data)
    text.encode("utf-8", "strict")
    loaded = json.loads(text)
    validate(loaded)
    assert not FORBIDDEN_XML.search(json.dumps(loaded, ensure_ascii=False))
    assert "\ufffd lone surrogate" in loaded["tests"][0]["output"] and "\x1b" not in loaded["output"]


def test_summary_cannot_be_forged():
    md = report.markdown(result())
    assert "\x1b" not in md and "\x00" not in md and "\udcff" not in md
    headings = [line for line in md.split("\n") if line.startswith("#")]
    assert headings == ["## A1: PyTorch warm-up: 3 / 6", "### What to fix"]
    rows = [line for line in md.split("\n") if line.startswith("|")]
    assert len(rows) == 4  # header, rule and the two checks: no forged row
    assert rows[3].count(" | ") == 3  # the title's "|" is escaped
    outside_code = [line for line in md.split("\n") if not line.startswith("    ")]
    assert not any(re.search(r"(?<!\\)<(?!br>)", line) for line in outside_code)  # no HTML but our <br>
    assert not any(re.fullmatch(r"=+|-+", line) for line in outside_code)  # no setext heading


def test_the_terminal_table_keeps_only_our_colours():
    for color in (False, True):
        text = report.table(result(), color=color, width=100)
        ours = re.sub(r"\x1b\[(?:0|1|31|32)m", "", text)
        assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f]", ours)
        assert "cleared" in text
    assert "\x1b[32m" in report.table(result(), color=True, width=100)


def test_write_all_writes_every_file_on_a_hostile_result(tmp_path):
    paths = report.write_all(result(), tmp_path)
    json.loads(paths["json"].read_bytes().decode("utf-8"))
    ET.parse(paths["junit"])
    md = paths["markdown"].read_bytes().decode("utf-8")
    assert [line for line in md.split("\n") if line.startswith("## ")] == ["## A1: PyTorch warm-up: 3 / 6"]


def test_reports_replace_links_instead_of_writing_through_them(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("the user's own file\n")
    (out / "results.json").symlink_to(victim)
    (out / "summary.md").write_text("an old summary\n")
    paths = report.write_all(result(), out)
    assert victim.read_text() == "the user's own file\n"
    assert not paths["json"].is_symlink() and json.loads(paths["json"].read_text())["score"] == 3
    assert "an old summary" not in paths["markdown"].read_text()
    assert sorted(os.listdir(out)) == ["junit.xml", "results.json", "summary.md"]  # no temporary files left
    assert oct(paths["json"].stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


NOTHING_NAMED = {"mistakes": [], "grader_errors": [], "rule_hits": []}
KEPT = {"held_out": 0.0, **NOTHING_NAMED}  # nothing held out (no check crashed), nothing named


def test_results_carry_each_checks_time_and_say_when_time_ran_out():
    from grader.reports.formats import gradescope

    r = result()
    r.checks[0].out_of_time = True
    data = gradescope(r)
    r.checks[0].call_seconds = 0.25  # the part of the check's time spent in the student's calls
    data = gradescope(r)
    assert data["extra_data"]["checks"] == [
        {
            "id": "a1.warmup.pi",
            "seconds": 0.5,
            "call_seconds": 0.25,
            "out_of_time": True,
            "held_out": 0.0,
            **NOTHING_NAMED,
        },
        {
            "id": "a1.warmup.count",
            "seconds": 0.1,
            "call_seconds": 0.0,
            "out_of_time": False,
            "held_out": 0.0,
            **NOTHING_NAMED,
        },
    ]
    assert "1 check(s) could not be judged: the time allowed for grading this submission ran out" in data["output"]
    r.checks[0].out_of_time = False
    assert "could not be judged" not in gradescope(r)["output"]
