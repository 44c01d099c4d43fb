"""The autograder bundle on an emulated Gradescope (tests/emulation/gradescope.py, written from Gradescope's own
documentation): the zip extracted into /autograder/source, setup.sh run there as root, run_autograder copied to
/autograder and run from there on /autograder/submission under the platform's CPU, memory and time limits.

Every assignment: the reference scores 100 (uploaded as a zip left packed, and as loose files), the student kit 0,
and a hostile submission cannot read the staff's files, forge results.json or outlive its grading. The `user`
fallback that Gradescope's Docker containers get (no namespaces) runs here too: chosen by name, and chosen by `auto`
under a seccomp filter that refuses namespaces as Docker's default profile does."""

from __future__ import annotations

import ast
import io
import json
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

from grader.course import manifest as manifests
from tests.conftest import ROOT, processes_with
from tests.emulation.gradescope import MEMORY_MB, Image, Outcome
from tests.grader.gradescope_schema import validate

pytestmark = [pytest.mark.slow, pytest.mark.platform]

ASSIGNMENTS = ("a1_knn", "a2_linear", "a3_networks")
# the function of each assignment that carries the attack (it loses its own points, nothing more)
ATTACKED = {"a1_knn": "compute_distances_two_loops", "a2_linear": "svm_loss_naive", "a3_networks": "sgd_momentum"}


def image_memory(image: Image) -> int:
    """Gradescope's 768 MB holds the CPU build of PyTorch that setup.sh installs from PyTorch's CPU index. Where
    that index cannot be reached (this machine: the only torch 2.14.1 on its disk is the CUDA build, whose import
    alone keeps about 670 MB resident per process against about 210 MB) the image gets the CUDA build and the
    emulation gives it 768 MB plus what that build costs its two torch processes (judge and worker, or judge and
    notebook kernel): the memory bench prints both."""
    py = image.root / "venv" / "bin" / "python"
    cuda = subprocess.run([str(py), "-c", "import torch; print(torch.version.cuda)"], capture_output=True, text=True)
    return MEMORY_MB if cuda.stdout.strip() in ("None", "") else MEMORY_MB + 2 * 640


def reference_files(m: manifests.Manifest) -> dict[str, bytes]:
    return {f: (ROOT / f).read_bytes() for f in [*m.files, *m.notebooks]}


def zipped(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def check_results(o: Outcome) -> dict:
    assert o.returncode == 0, f"run_autograder ended with {o.returncode} ({o.limited})\n{o.stdout[-3000:]}"
    assert o.oom_kills == 0, f"killed for memory ({o.limited}, peak {o.peak_mb:.0f} MB)\n{o.stdout[-2000:]}"
    assert o.results is not None, f"no valid results.json:\n{o.raw[:500]}\n{o.stdout[-3000:]}"
    validate(o.results)
    assert not o.leftover, f"processes outlived the run: {o.leftover}"
    return o.results


def test_the_bundle_has_gradescopes_layout(released):
    """ "The file must contain at least two files in the root of the archive: setup.sh ... run_autograder" and
    /autograder/source holds "the extracted contents": the kit sits beside them, not in a folder of its own."""
    for name in ASSIGNMENTS:
        with zipfile.ZipFile(released[f"autograder {name}"]) as zf:
            infos = {i.filename: i for i in zf.infolist()}
        for script in ("setup.sh", "run_autograder"):
            assert script in infos and (infos[script].external_attr >> 16) & 0o111, script
        assert "pyproject.toml" in infos and f"assignments/{name}/hidden.py" in infos
        assert not any(n.startswith("source/") for n in infos)
        setup = zipfile.ZipFile(released[f"autograder {name}"]).read("setup.sh").decode()
        assert "download.pytorch.org/whl/cpu" in setup and "bubblewrap" in setup


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_the_reference_scores_full_marks_on_gradescope(gradescope, name):
    image = gradescope.build(name)
    m = manifests.load(name, ROOT)
    files = reference_files(m)
    # a zip upload, as `grader submit` writes it, left packed in /autograder/submission
    o = image.run({f"{name}_submission.zip": zipped(files)}, memory_mb=image_memory(image))
    r = check_results(o)
    assert r["score"] == pytest.approx(100), o.stdout[-3000:]
    assert any(t["visibility"] == "after_published" for t in r["tests"])  # the hidden checks ran
    extra = r["extra_data"]
    assert extra["sandbox"]["isolation"]["mode"] in ("bwrap", "user")
    assert not any(c["out_of_time"] for c in extra["checks"]) and len(extra["checks"]) == len(r["tests"])
    assert all(n["status"] == "ran" for n in extra["notebooks"]["notebooks"])  # the report ran every notebook
    memory = extra["sandbox"]["memory_peak_rss_mb"]
    assert memory["judge"] > 0 and memory["worker"] > 0
    assert (image.root / "results" / "report.html").is_file()


def test_loose_files_dragged_into_the_upload_grade_too(gradescope):
    image = gradescope.build("a1_knn")
    m = manifests.load("a1_knn", ROOT)
    flat = {Path(f).name: (ROOT / f).read_bytes() for f in m.files}  # the .py files, without their folder
    o = image.run(flat, cpus=None, memory_mb=image_memory(image))
    r = check_results(o)
    assert r["score"] == pytest.approx(100)
    missing = [n for n in r["extra_data"]["notebooks"]["notebooks"] if n["status"] == "missing"]
    assert len(missing) == 2  # no notebook uploaded: said so, and the grade stands


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_the_student_kit_scores_zero_on_gradescope(gradescope, released, name):
    image = gradescope.build(name)
    kit = released["student kit"]
    m = manifests.load(name, ROOT)
    o = image.run({f: (kit / f).read_bytes() for f in m.files}, cpus=None, memory_mb=image_memory(image))
    r = check_results(o)
    assert r["score"] == 0
    assert all("Traceback" not in t["output"] for t in r["tests"])
    assert any("not implemented yet" in t["output"] for t in r["tests"])


# Built-ins only: a graded file may import no module the lesson does not need (os, subprocess, json: refused by the
# static scan before anything runs), and no process can be started (the worker's walls); what is left to try on the
# platform is the operating system's sandbox itself, with open().
ATTACK = """
def {function}(*args, **kwargs):
    found = {{}}
    for path in {secrets!r}:
        try:
            with open(path, "rb") as f:
                found[path] = "READ " + f.read(40).decode("latin-1")
        except OSError as e:
            found[path] = type(e).__name__
    forged = '{{"score": 100, "tests": []}}'
    for path in {writable!r}:
        try:
            with open(path, "w") as f:
                f.write(forged)
            found[path] = "WROTE"
        except OSError as e:
            found[path] = type(e).__name__
    raise RuntimeError("ATTACK " + repr(found))
"""


def hostile(name: str, image: Image, marker: str) -> dict[str, bytes]:
    """The reference with one function replaced by an attack on the platform's files."""
    m = manifests.load(name, ROOT)
    source = image.root / "source"
    secrets = [
        str(source / "assignments" / name / "hidden.py"),
        str(source / "assignments" / name / "oracles.py"),
        str(source / "assignments" / name / m.checks[0]),
        "/etc/shadow",
    ]
    # the data set's label file, as the image's own Python finds it (scikit-learn's digits)
    found = subprocess.run(
        [
            str(image.root / "venv" / "bin" / "python"),
            "-c",
            "from grader.course.datafiles import label_files; print(label_files())",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    labels = [f for f in ast.literal_eval(found.stdout.strip()) if f.endswith(".csv.gz")]
    assert labels, found.stdout
    secrets += labels
    results = str(image.root / "results" / "results.json")
    files = {}
    for f in m.files:
        text = (ROOT / f).read_text()
        function = ATTACKED[name]
        if f"def {function}(" in text:
            text += ATTACK.format(
                function=function,
                secrets=secrets,
                writable=[results, str(source / "assignments" / name / "hidden.py")],
                results=results,
                marker=marker,
            )
        files[Path(f).name] = text.encode()
    return files


def judge_attack(r: dict, name: str, o: Outcome, marker: str) -> None:
    function = ATTACKED[name]
    attacked = [t for t in r["tests"] if function in t["output"] or function in t["name"]]
    assert attacked and all(t["status"] == "failed" for t in attacked)
    m = manifests.load(name, ROOT)
    points = next(p.functions[function] for p in m.parts if function in p.functions)
    assert r["score"] == pytest.approx(100 - points * 100 / m.points, abs=1e-3)  # exactly its own points lost
    reports = [t["output"] for t in r["tests"] if "ATTACK {" in t["output"]]
    assert reports, "the attack did not run: " + "\n".join(t["output"][:300] for t in attacked[:3])
    for text in reports:
        found = ast.literal_eval(text[text.index("ATTACK {") + 7 :].splitlines()[0])
        # "READ " with nothing after it: bubblewrap covers the label file with an empty one
        assert not any(str(v).startswith("READ ") and len(str(v)) > 5 for v in found.values()), found
        assert not any(v == "WROTE" for v in found.values()), found
    assert "WROTE" not in o.stdout
    time.sleep(1)  # a surviving daemon would have rewritten results.json by now
    assert processes_with(marker) == [], "a process the submission started outlived grading"


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_a_hostile_submission_cannot_raise_its_score_on_gradescope(gradescope, name):
    image = gradescope.build(name)
    marker = f"gs-attack-{name}-{time.time_ns()}"
    o = image.run(hostile(name, image, marker), cpus=None, memory_mb=image_memory(image))
    r = check_results(o)
    judge_attack(r, name, o, marker)
    time.sleep(1)
    final = json.loads((image.root / "results" / "results.json").read_text())
    assert final == r  # nothing rewrote it after the run


def test_a_submission_that_runs_out_of_the_platforms_time_still_gets_its_results(gradescope):
    """A course that keeps Gradescope's clock short (here 150 s): a function that never returns uses up grading's
    share; the checks still waiting fail at once, marked out_of_time, the notebooks get what is left, and a valid
    results.json is there before the platform would kill the run."""
    image = gradescope.build("a1_knn")
    m = manifests.load("a1_knn", ROOT)
    files = reference_files(m)
    knn = files["a1_knn/knn.py"].decode()
    files["a1_knn/knn.py"] = (
        knn + "\n\ndef compute_distances_one_loop(x_train, x_test):\n    while True:\n        pass\n"
    ).encode()
    o = image.run(files, cpus=None, memory_mb=image_memory(image), timeout=150, env={"GRADER_PLATFORM_TIMEOUT": "150"})
    r = check_results(o)  # returncode 0: not killed by the platform's clock
    late = [c["id"] for c in r["extra_data"]["checks"] if c["out_of_time"]]
    assert late, "no check ran out of time"
    by_id = {t["name"].rsplit("[", 1)[1].rstrip("]"): t for t in r["tests"]}
    for cid in late:
        assert by_id[cid]["status"] == "failed" and "ran out" in by_id[cid]["output"]
    assert r["extra_data"]["sandbox"]["out_of_time"] == len(late)
    assert f"{len(late)} check(s) could not be judged" in r["output"]
    assert 0 < r["score"] < 100
