"""The student kit's everyday commands, run with make as a student would: which assignment and part `make grade`
grades, flags passed on, `make notebook` as root, `make submit` without an assignment; and tools/install-torch.sh
choosing PyTorch's CPU build, falling back to the default index (said aloud) where PyTorch's index cannot be
reached, and the CUDA build where a GPU answers. The grader, JupyterLab, pip and nvidia-smi are stand-ins that
record how they were called: nothing is installed."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from grader.kit.release import STUDENT_MAKEFILE
from tests.conftest import ROOT

RECORDER = """#!/usr/bin/env bash
echo "{name} $*" >> "{log}"
"""


@pytest.fixture
def kit(tmp_path):
    """The kit's Makefile, tools and pyproject.toml, with .venv's grader and jupyter recording their arguments."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    k = tmp_path / "kit"
    (k / ".venv" / "bin").mkdir(parents=True)
    (k / "Makefile").write_text(STUDENT_MAKEFILE)
    shutil.copytree(ROOT / "tools", k / "tools")
    shutil.copy2(ROOT / "pyproject.toml", k / "pyproject.toml")
    log = tmp_path / "calls.log"
    for name in ("grader", "jupyter"):
        exe = k / ".venv" / "bin" / name
        exe.write_text(RECORDER.format(name=name, log=log))
        exe.chmod(0o755)
    os.utime(k / ".venv" / "bin" / "grader")  # newer than pyproject.toml: installed
    return k, log


def _make(kit_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MAKEFLAGS": ""}
    return subprocess.run(["make", "-s", *args], cwd=kit_dir, capture_output=True, text=True, env=env, timeout=120)


def _calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_make_grade_grades_the_assignment_and_part_it_is_given(kit):
    k, log = kit
    assert _make(k, "grade", "A=a1_knn", "PART=knn").returncode == 0
    assert _make(k, "grade", "PART=warmup knn", "ARGS=--verbose").returncode == 0
    assert _make(k, "grade").returncode == 0
    assert _calls(log) == [
        "grader grade . --assignment a1_knn --part knn",
        "grader grade . --part warmup --part knn --verbose",
        "grader grade .",
    ]


def test_make_submit_passes_flags_and_asks_for_the_assignment(kit):
    k, log = kit
    r = _make(k, "submit")
    assert r.returncode == 2 and "make submit: which assignment? For example: make submit A=a1_knn" in r.stderr
    assert _calls(log) == []
    assert _make(k, "submit", "A=a1_knn", "ARGS=--allow-incomplete").returncode == 0
    assert _calls(log) == ["grader submit . --assignment a1_knn --allow-incomplete"]


def test_make_report_and_notebook(kit):
    k, log = kit
    assert _make(k, "report", "A=a2_linear").returncode == 0
    assert _make(k, "notebook", "ARGS=--no-browser").returncode == 0
    root = " --allow-root" if os.geteuid() == 0 else ""  # JupyterLab refuses root without it
    assert _calls(log) == [
        "grader grade . --report --pdf --assignment a2_linear",
        f"jupyter lab notebooks/{root} --KernelManager.transport_encryption=auto --no-browser",
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _execute(url: str, code: str) -> str:
    """Run `code` in a kernel through JupyterLab's websocket (as the browser does); its printed text."""
    from tornado.websocket import websocket_connect

    ws = await websocket_connect(url)
    msg_id = uuid.uuid4().hex
    header = {"msg_id": msg_id, "msg_type": "execute_request", "session": uuid.uuid4().hex, "username": "student"}
    content = {"code": code, "silent": False, "store_history": False, "user_expressions": {}, "allow_stdin": False}
    ws.write_message(json.dumps({"header": {**header, "version": "5.3", "date": ""}, "parent_header": {},
                                 "metadata": {}, "channel": "shell", "content": content}))  # fmt: skip
    while True:
        msg = json.loads(await asyncio.wait_for(ws.read_message(), 60))
        if msg.get("msg_type") == "stream" and msg["parent_header"].get("msg_id") == msg_id:
            ws.close()
            return msg["content"]["text"]


@pytest.mark.slow
def test_make_notebook_starts_jupyterlab_that_runs_code_quietly(kit, tmp_path):
    """The real JupyterLab (this environment's), started by the kit's `make notebook` as this user (root here, as
    in many containers): it serves, starts a kernel, runs a cell, and no kernel warns about TCP without encryption
    (ipykernel 7.3+ does at every start over plain TCP: the kit asks for CurveZMQ encryption)."""
    pytest.importorskip("jupyterlab", reason="JupyterLab is not installed here (pip install -e '.[test]')")
    k, _ = kit
    shim = k / ".venv" / "bin" / "jupyter"
    shim.write_text(f'#!/usr/bin/env bash\nexec "{sys.executable}" -m jupyter "$@"\n')
    (k / "notebooks").mkdir()
    port, token = _free_port(), uuid.uuid4().hex
    env = {**os.environ, "MAKEFLAGS": "", "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces")}  # fmt: skip
    args = f"ARGS=--no-browser --port={port} --ServerApp.port_retries=0 --IdentityProvider.token={token}"
    lab = subprocess.Popen(["make", "-s", "notebook", args], cwd=k, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, start_new_session=True)  # fmt: skip
    base, auth = f"127.0.0.1:{port}", {"Authorization": f"token {token}"}
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(urllib.request.Request(f"http://{base}/api/status", headers=auth), timeout=1)
                break
            except OSError:
                assert lab.poll() is None, lab.communicate()[0]
                time.sleep(0.25)
        new = urllib.request.Request(f"http://{base}/api/kernels", data=b'{"name": "python3"}', method="POST",
                                     headers={**auth, "Content-Type": "application/json"})  # fmt: skip
        kernel = json.load(urllib.request.urlopen(new, timeout=60))
        url = f"ws://{base}/api/kernels/{kernel['id']}/channels?token={token}"
        assert asyncio.run(_execute(url, "print(6 * 7)")).strip() == "42"
    finally:
        os.killpg(lab.pid, signal.SIGINT)  # JupyterLab asks to confirm a first Ctrl-C; a second one stops it
        time.sleep(0.5)
        os.killpg(lab.pid, signal.SIGINT)
        try:
            out = lab.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            os.killpg(lab.pid, signal.SIGKILL)
            out = lab.communicate()[0]
    assert "Jupyter Server" in out and "is running at" in out, out
    assert "without encryption" not in out, out


def test_make_help_lists_the_commands(kit):
    k, _ = kit
    out = _make(k, "help").stdout
    for target in ("install", "grade", "report", "submit", "notebook"):
        assert f"{target}\t" in out, out


# -- tools/install-torch.sh ------------------------------------------------------------------------------------

FAKE_PYTHON = """#!/usr/bin/env bash
# the environment's python: reading pyproject.toml is real, pip only records what it was asked
if [ "$1" = "-" ]; then exec "{python}" "$@"; fi
if [ "$1" = "-c" ]; then [ -n "${{INDEX_REACHABLE:-}}" ]; exit $?; fi  # the look at PyTorch's index
echo "$*" >> "{log}"
exit 0
"""


@pytest.fixture
def install(tmp_path):
    """Run the kit's install-torch.sh from a kit folder with a recording python and, optionally, an nvidia-smi."""
    k = tmp_path / "kit"
    k.mkdir()
    shutil.copytree(ROOT / "tools", k / "tools")
    shutil.copy2(ROOT / "pyproject.toml", k / "pyproject.toml")
    log = tmp_path / "pip.log"
    py = tmp_path / "python"
    py.write_text(FAKE_PYTHON.format(python=sys.executable, log=log))
    py.chmod(0o755)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()

    def run(choice: str, gpu: bool = False, reachable: bool = False) -> tuple[subprocess.CompletedProcess, list]:
        if gpu:
            smi = bin_dir / "nvidia-smi"
            smi.write_text('#!/bin/sh\necho "GPU 0: NVIDIA H100 (UUID: GPU-0)"\n')
            smi.chmod(0o755)
        path = f"{bin_dir}:/usr/bin:/bin"
        env = {"PATH": path, "HOME": str(tmp_path), **({"INDEX_REACHABLE": "1"} if reachable else {})}
        r = subprocess.run(
            ["bash", "tools/install-torch.sh", str(py), choice], cwd=k, capture_output=True, text=True, env=env
        )
        calls = log.read_text().splitlines() if log.exists() else []
        log.unlink(missing_ok=True)
        return r, calls

    return run


PINS = "torch==2.14.1 torchvision==0.29.1"
CPU_INDEX = "--index-url https://download.pytorch.org/whl/cpu"


def test_without_a_gpu_the_cpu_build_is_installed_from_pytorchs_index(install):
    r, calls = install("auto", reachable=True)
    assert r.returncode == 0, r.stderr
    assert "install: PyTorch for the CPU" in r.stdout and "could not be reached" not in r.stdout
    assert len(calls) == 1 and CPU_INDEX in calls[0] and calls[0].endswith(PINS)


def test_where_pytorchs_index_cannot_be_reached_the_default_index_is_used_and_said(install):
    r, calls = install("cpu")
    assert r.returncode == 0, r.stderr
    assert "https://download.pytorch.org/whl/cpu could not be reached; PyTorch from the default index" in r.stdout
    assert calls == [f"-m pip install -q {PINS}"]  # no pip run waiting on the index it could not reach


def test_a_gpu_or_torch_cuda_gets_the_cuda_build(install):
    for choice, gpu in (("auto", True), ("cuda", False)):
        r, calls = install(choice, gpu=gpu)
        assert r.returncode == 0, r.stderr
        assert "install: PyTorch with CUDA" in r.stdout
        assert calls == [f"-m pip install -q {PINS}"]


def test_an_unknown_choice_is_refused(install):
    r, calls = install("tpu")
    assert r.returncode == 2 and "TORCH=tpu: expected auto, cpu or cuda" in r.stderr and calls == []


def test_the_kits_readme_teaches_the_loop_and_what_is_graded_by_hand():
    from grader.course import manifest
    from grader.kit.release import _student_readme

    ms = [manifest.load(n, ROOT) for n in manifest.available(ROOT)]
    text = _student_readme(ms)
    for command in (
        "make install",
        "make install TORCH=cuda",
        "make notebook",
        "make grade A=a1_knn PART=knn",
        "make report A=a1_knn",
        "make submit A=a1_knn",
        "ARGS=--allow-incomplete",
        "grader-results/<assignment>/",
        "grader list --rules -a a1_knn",
    ):
        assert command in text, command
    for m in ms:  # each assignment's parts, notebooks and points graded by hand
        line = next(s for s in text.splitlines() if s.startswith(f"| `{m.name}` |"))
        hand = sum(q.points for q in m.questions)
        assert hand > 0 and f"{m.points:g} + {hand:g}" in line
        assert all(f"`{nb}`" in line for nb in m.notebooks) and all(f"`{p.name}`" in line for p in m.parts)
    assert "run and saved with their outputs" in text
