"""The `user` fallback, the isolation real Gradescope submissions get: Docker's default seccomp profile refuses the
namespaces bubblewrap needs, so the grader, running as root, runs student code as `nobody`. It runs here on what
Gradescope has: a Python installed outside /root (the image's venv from the system's python3.11, built by the
bundle's own setup.sh), the grader as root.

Its promises, each shown by an attack: the staff's files (hidden checks, oracles, checks) and the data set's label
file unreadable; results.json and the course folder unwritable; no process outliving grading (a daemon in a session
of its own included); the notebook kernel held to the same. What it cannot promise, no network isolation, is
written in the results (isolation.network_isolated is false) and in the README."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time

import nbformat
import pytest

from grader.course import manifest as manifests
from tests.conftest import ROOT, processes_with
from tests.platforms.test_gradescope import (
    check_results,
    hostile,
    image_memory,
    judge_attack,
    reference_files,
)

pytestmark = [pytest.mark.slow, pytest.mark.platform]

NO_NAMESPACES = [sys.executable, str(ROOT / "tests" / "emulation" / "no_namespaces.py")]


def test_user_mode_by_name_holds_against_the_attacks(gradescope):
    image = gradescope.build("a1_knn")
    marker = f"user-attack-{time.time_ns()}"
    o = image.run(
        hostile("a1_knn", image, marker), cpus=None, memory_mb=image_memory(image), env={"GRADER_SANDBOX": "user"}
    )
    r = check_results(o)
    isolation = r["extra_data"]["sandbox"]["isolation"]
    assert isolation["mode"] == "user", isolation
    # as root outside a container the worker can still take itself off the network (unshare), and says so
    assert r["extra_data"]["sandbox"]["worker"]["network_isolated"] is True
    judge_attack(r, "a1_knn", o, marker)


def test_auto_falls_back_to_user_where_docker_refuses_namespaces(gradescope):
    """Under a seccomp filter that refuses namespaces as Docker's default profile does, `auto` picks `user`."""
    pytest.importorskip("pyseccomp")
    image = gradescope.build("a1_knn")
    marker = f"seccomp-attack-{time.time_ns()}"
    o = image.run(hostile("a1_knn", image, marker), cpus=None, memory_mb=image_memory(image), wrapper=NO_NAMESPACES)
    r = check_results(o)
    isolation = r["extra_data"]["sandbox"]["isolation"]
    assert isolation["mode"] == "user" and "namespaces" in isolation.get("weaker_because", ""), isolation
    assert r["extra_data"]["sandbox"]["worker"]["network_isolated"] is False  # what it cannot promise, said
    judge_attack(r, "a1_knn", o, marker)


NOTEBOOK_ATTACK = """
import json, os, subprocess, sys
found = {{}}
for path in {secrets!r}:
    try:
        found[path] = "READ " + open(path, "rb").read(40).decode("latin-1")
    except OSError as e:
        found[path] = type(e).__name__
try:
    open({results!r}, "w").write('{{"score": 100, "tests": []}}')
    found["results"] = "WROTE"
except OSError as e:
    found["results"] = type(e).__name__
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", {marker!r}], start_new_session=True)
print("NOTEBOOK-ATTACK", json.dumps(found))
"""


def test_the_notebook_kernel_holds_the_same_promises_and_still_has_its_data(gradescope):
    """The reference's notebooks run under `user` on the data set they train on (a copy for the kernel: the
    worker's protection of the label file stays), and a cell that attacks reads and writes nothing of the staff's."""
    image = gradescope.build("a1_knn")
    m = manifests.load("a1_knn", ROOT)
    files = reference_files(m)
    marker = f"kernel-attack-{time.time_ns()}"
    source = image.root / "source" / "assignments" / "a1_knn"
    nb = nbformat.reads(files["notebooks/knn.ipynb"].decode(), as_version=4)
    code = NOTEBOOK_ATTACK.format(
        secrets=[str(source / "hidden.py"), str(source / "oracles.py")],
        results=str(image.root / "results" / "results.json"),
        marker=marker,
    )
    nb.cells.insert(1, nbformat.v4.new_code_cell(code))
    files["notebooks/knn.ipynb"] = nbformat.writes(nb).encode()
    o = image.run(files, cpus=None, memory_mb=image_memory(image), env={"GRADER_SANDBOX": "user"})
    r = check_results(o)
    assert r["extra_data"]["sandbox"]["isolation"]["mode"] == "user"
    assert r["score"] == pytest.approx(100)
    runs = r["extra_data"]["notebooks"]["notebooks"]
    assert all(n["status"] == "ran" for n in runs), runs
    # the data cells ran: no cell raised (the attack cell prints, it does not raise)
    assert all(not n["cells"] for n in runs), runs
    page = (image.root / "results" / "report.html").read_text()
    assert "NOTEBOOK-ATTACK" in page  # the cell ran
    line = page[page.index("NOTEBOOK-ATTACK") :].split("\n", 1)[0]
    assert "READ " not in line and "WROTE" not in line, line
    time.sleep(1)
    assert processes_with(marker) == []
    assert json.loads((image.root / "results" / "results.json").read_text()) == r


CROSS = """
import os, subprocess, sys, time

def sleepy(seconds):
    time.sleep(seconds)
    return seconds

def die():
    os._exit(3)

def daemon(marker):
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", marker], start_new_session=True,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    return True
"""


def test_one_gradings_cleanup_never_touches_another_gradings_worker(gradescope, monkeypatch):
    """`grader batch` grades several submissions at once, every worker as `nobody`: one worker that dies (and is
    cleaned up, with what it started) must not take another grading's worker with it. Each judge kills only its
    own descendants (it adopts the orphans: a child subreaper)."""
    import tempfile
    import threading
    from pathlib import Path

    from grader.sandbox import isolation as sandbox_module
    from grader.sandbox.host import Sandbox
    from grader.sandbox.isolation import SandboxConfig, SandboxError

    # no cgroup can be made (a container without a writable /sys/fs/cgroup, as on Gradescope)
    monkeypatch.setattr(sandbox_module.Cgroup, "ROOT", Path("/nonexistent-cgroup-root"))
    image = gradescope.build(gradescope.current or "a1_knn")
    python = str(image.root / "venv" / "bin" / "python")
    boxes = []
    for who in ("a", "b"):
        root = Path(tempfile.mkdtemp(prefix=f"cross-{who}-", dir="/var/tmp")) / "kit"
        (root / "pkg").mkdir(parents=True)
        (root / "pkg" / "__init__.py").write_text("")
        (root / "pkg" / "cross.py").write_text(CROSS)
        os.chmod(root.parent, 0o755)
        # walls=False: the worker's walls would refuse the daemon outright; this is the cleanup beneath them
        cfg = SandboxConfig(
            root=root, student_files=["pkg/cross.py"], call_timeout=60, isolation="user", python=python, walls=False
        )
        boxes.append(Sandbox(cfg))
    a, b = boxes
    marker = f"cross-daemon-{time.time_ns()}"
    try:
        assert a.isolation.mode == "user" and b.isolation.mode == "user"
        assert not a._cgroup.dirs and not b._cgroup.dirs
        assert b.call("pkg.cross", "daemon", (marker,)).value is True
        got = {}
        slow = threading.Thread(target=lambda: got.update(v=a.call("pkg.cross", "sleepy", (6,)).value))
        slow.start()
        time.sleep(2)
        with pytest.raises(SandboxError):
            b.call("pkg.cross", "die")  # b's worker dies and is cleaned up while a's is busy
        b.close()
        slow.join(60)
        assert got.get("v") == 6, "the other grading's worker was killed"
        assert processes_with(marker) == []  # b's daemon, in a session of its own, went with b
    finally:
        for box in boxes:
            box.close()
            shutil.rmtree(box.config.root.parent, ignore_errors=True)
