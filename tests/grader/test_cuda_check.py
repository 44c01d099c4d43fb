"""`make cuda-check` (bench/cuda_check.py): the comparison of two devices' gradings, its report and exit status,
the skip without a GPU, and what bubblewrap gets to show an NVIDIA GPU to a worker on CUDA."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

from bench import cuda_check
from bench.cuda_check import EXIT_DIFFERENT, EXIT_ERROR, EXIT_SAME, EXIT_SKIPPED, Outcome, Side, compare, render
from grader.sandbox import isolation as sandbox
from grader.sandbox.isolation import IsolationError, SandboxConfig, bwrap_base, bwrap_devices, detect_isolation


def side(device: str, **checks: tuple[str, float]) -> Side:
    """A fabricated grading of `a1_knn`: check id (dots as __) -> (status, score), each out of 2 points."""
    return Side(
        "a1_knn",
        device,
        checks={
            k.replace("__", "."): Outcome(status, score, 2.0, 0.1, output="" if status == "passed" else "wrong values")
            for k, (status, score) in checks.items()
        },
        score=sum(score for _, score in checks.values()),
        max_score=2.0 * len(checks),
    )


# ---- the comparison ----------------------------------------------------------------------------------------


def test_identical_gradings_have_no_difference():
    a = side("cuda", a1__x=("passed", 2.0), a1__y=("failed", 0.0))
    b = side("cpu", a1__x=("passed", 2.0), a1__y=("failed", 0.0))
    assert compare(a, b, "cuda", "cpu") == []
    text = render([(a, b)], ["cuda", "cpu"], [])
    assert "| a1_knn | a1.x | passed | 2.00/2.00 | 0.10 | passed | 2.00/2.00 | 0.10 | yes |" in text
    assert "**OK**" in text and "all 2 checks" in text


def test_a_verdict_points_or_check_that_differs_is_named():
    a = side("cuda", a1__verdict=("failed", 0.0), a1__points=("passed", 2.0), a1__gone=("passed", 2.0))
    b = side("cpu", a1__verdict=("passed", 2.0), a1__points=("passed", 1.5), a1__extra=("passed", 2.0))
    diffs = compare(a, b, "cuda", "cpu")
    by_check = {d.check: d for d in diffs}
    assert set(by_check) == {"a1.verdict", "a1.points", "a1.gone", "a1.extra"}
    assert by_check["a1.verdict"].kind == "verdict"
    assert "failed on cuda, passed on cpu" in str(by_check["a1.verdict"])
    assert "cuda said: wrong values" in by_check["a1.verdict"].message  # the failing side's feedback
    assert by_check["a1.points"].kind == "points"
    assert "2/2 points on cuda, 1.5/2 on cpu" in by_check["a1.points"].message
    assert by_check["a1.gone"].kind == "missing" and "ran on cuda but not on cpu" in by_check["a1.gone"].message
    assert by_check["a1.extra"].kind == "missing" and "ran on cpu but not on cuda" in by_check["a1.extra"].message
    assert str(by_check["a1.gone"]).startswith("a1_knn a1.gone: ")
    text = render([(a, b)], ["cuda", "cpu"], diffs)
    assert "## Differences (4)" in text and "**FAILED**" in text
    assert "| a1_knn | a1.extra | — | — | — | passed | 2.00/2.00 | 0.10 | **NO: missing** |" in text
    for check in by_check:
        assert f"`{check}`" in text


def test_a_grading_that_failed_is_an_error_not_a_pass():
    a = side("cuda", a1__x=("passed", 2.0))
    b = Side("a1_knn", "cpu", error="GraderError: the sandbox could not start")
    (d,) = compare(a, b, "cuda", "cpu")
    assert d.kind == "error" and "could not be graded on cpu: GraderError" in d.message


def test_labels_tell_the_same_device_apart():
    assert cuda_check.labels_for(["cpu", "cpu"]) == ["cpu", "cpu#2"]
    assert cuda_check.labels_for(["cuda", "cpu"]) == ["cuda", "cpu"]


def test_a_difference_fails_the_command(monkeypatch, tmp_path, capsys):
    """main() with fabricated gradings (no grading runs): exit 1, the check named, the files written."""

    def fake_run_jobs(jobs, parallel, budget):
        out = {}
        for job in jobs:
            status = ("failed", 0.0) if job.side == 1 else ("passed", 2.0)
            out[(job.assignment, job.side)] = side(job.device, a1__same=("passed", 2.0), a1__odd=status)
        return out

    monkeypatch.setattr(cuda_check, "run_jobs", fake_run_jobs)
    rc = cuda_check.main(["--devices", "cpu", "cpu", "-a", "a1_knn", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == EXIT_DIFFERENT
    assert "`a1.odd` (verdict): passed on cpu, failed on cpu#2" in out
    record = json.loads((tmp_path / "cuda-check.json").read_text())
    assert record["exit_status"] == EXIT_DIFFERENT and record["differences"][0]["check"] == "a1.odd"
    assert "**FAILED**" in (tmp_path / "cuda-check.md").read_text()


def test_an_unknown_part_is_an_error(tmp_path, capsys):
    assert cuda_check.main(["--devices", "cpu", "cpu", "--part", "nope", "--out", str(tmp_path)]) == EXIT_ERROR
    assert "--part ['nope']" in capsys.readouterr().out


# ---- without a GPU -----------------------------------------------------------------------------------------


def test_no_gpu_is_a_skip_with_its_own_status(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(sandbox, "nvidia_device_nodes", lambda dev="/dev": [])
    assert cuda_check.main(["--out", str(tmp_path)]) == EXIT_SKIPPED
    assert "skipped: no CUDA device" in capsys.readouterr().out
    assert "skipped: no CUDA device" in (tmp_path / "cuda-check.md").read_text()


def test_a_gpu_pytorch_cannot_use_is_an_error_not_a_skip(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(sandbox, "nvidia_device_nodes", lambda: ["/dev/nvidiactl", "/dev/nvidia0"])
    assert cuda_check.main(["--out", str(tmp_path)]) == EXIT_ERROR
    assert "a GPU is present (/dev/nvidiactl, /dev/nvidia0) but PyTorch" in capsys.readouterr().out


def test_a_worker_that_cannot_reach_the_gpu_is_reported(root):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    ok, why, isolation = cuda_check.sandbox_sees_cuda(root, "auto")
    assert not ok and why and isolation["mode"] in ("bwrap", "user", "none")


def test_make_target_skips_without_a_gpu(root, tmp_path):
    if torch.cuda.is_available() or sandbox.nvidia_device_nodes():
        pytest.skip("this machine has a GPU")
    r = subprocess.run(
        ["make", "-s", "cuda-check", f"ARGS=--out {tmp_path}"], cwd=root, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "skipped: no CUDA device" in r.stdout


# ---- a real comparison, on the CPU twice (and on CUDA where there is one) ----------------------------------


def test_cpu_against_cpu_is_identical(tmp_path, capsys):
    rc = cuda_check.main(
        ["--devices", "cpu", "cpu", "-a", "a1_knn", "--part", "warmup", "--public-only", "--out", str(tmp_path)]
    )
    out = capsys.readouterr().out
    assert rc == EXIT_SAME, out
    assert "| assignment | check | cpu | points | s | cpu#2 | points | s | same |" in out
    assert "| a1_knn | a1.warmup.create_sample_tensor | passed |" in out
    assert "| **a1_knn** | **total** |" in out and "**OK**" in out and "total wall time" in out
    record = json.loads((tmp_path / "cuda-check.json").read_text())
    assert record["exit_status"] == EXIT_SAME and record["differences"] == []
    (pair,) = record["assignments"]
    assert pair["a"]["checks"].keys() == pair["b"]["checks"].keys() and len(pair["a"]["checks"]) > 10
    assert (tmp_path / "cuda-check.md").read_text() in out


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_against_cpu_is_identical(tmp_path, capsys):
    rc = cuda_check.main(["-a", "a1_knn", "--part", "warmup", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == EXIT_SAME, out
    assert "sandbox worker on CUDA: sees" in out
    ok, name, _ = cuda_check.sandbox_sees_cuda(cuda_check.ROOT, "auto")
    assert ok and name == torch.cuda.get_device_name()


# ---- bubblewrap and the GPU --------------------------------------------------------------------------------

MINIMAL_DEV = {"null", "zero", "full", "random", "urandom", "tty", "console", "ptmx"}


def a_device_bwrap_does_not_make() -> str | None:
    """A character device of this machine that bubblewrap's minimal /dev lacks (stands in for /dev/nvidia0)."""
    found = [p for p in sorted(Path("/dev").iterdir()) if p.name not in MINIMAL_DEV and p.is_char_device()]
    for p in sorted(found, key=lambda p: p.stat().st_mode & 0o006 != 0o006):  # world-writable first, as a GPU's
        return str(p)
    return None


def cfg(tmp_path: Path, device: str, hide: list[str] | None = None) -> SandboxConfig:
    return SandboxConfig(root=tmp_path, student_files=[], device=device, hide=hide or [])


def test_gpu_files_are_bound_only_on_cuda_and_before_dev_is_read_only(monkeypatch, tmp_path):
    monkeypatch.setattr(sandbox, "nvidia_device_nodes", lambda: ["/dev/nvidiactl", "/dev/nvidia0"])
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    cpu = bwrap_base(cfg(tmp_path, "cpu"), empty) + bwrap_devices(cfg(tmp_path, "cpu"))
    assert not any("nvidia" in a for a in cpu) and "/sys" not in cpu
    argv = bwrap_base(cfg(tmp_path, "cuda"), empty) + bwrap_devices(cfg(tmp_path, "cuda"))
    i = argv.index("--dev-bind-try")
    binds = ["--dev-bind-try", "/dev/nvidiactl", "/dev/nvidiactl", "--dev-bind-try", "/dev/nvidia0", "/dev/nvidia0"]
    assert argv[i : i + 6] == binds
    # after the minimal /dev is made, before it is read-only (bubblewrap cannot make a mount point there then)
    assert argv.index("--dev") < i < argv.index("--remount-ro")
    assert argv[argv.index("/sys") - 1] == "--ro-bind-try"


def test_nvidia_files_found_are_the_drivers_without_the_display(tmp_path):
    for name in ("nvidia0", "nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset", "null"):
        (tmp_path / name).write_text("")
    (tmp_path / "nvidia-caps").mkdir()
    names = [Path(p).name for p in sandbox.nvidia_device_nodes(str(tmp_path))]
    assert names == ["nvidia-caps", "nvidia-uvm", "nvidia-uvm-tools", "nvidia0", "nvidiactl"]


def test_a_driver_library_only_ld_library_path_names_is_bound(monkeypatch, tmp_path):
    lib, other, hidden = tmp_path / "nvidia" / "lib64", tmp_path / "other", tmp_path / "course" / "lib"
    for d in (lib, other, hidden):
        d.mkdir(parents=True)
    (lib / "libcuda.so.1").write_text("")
    (hidden / "libcuda.so.1").write_text("")
    monkeypatch.setenv("LD_LIBRARY_PATH", os.pathsep.join([str(lib), str(other), "relative/lib", str(hidden)]))
    assert sandbox.nvidia_library_dirs([str(tmp_path / "course")]) == [str(lib.resolve())]
    argv = bwrap_devices(cfg(tmp_path, "cuda", hide=[str(tmp_path / "course")]))
    assert argv[-3:] == ["--ro-bind-try", str(lib.resolve()), str(lib.resolve())]
    assert bwrap_devices(cfg(tmp_path, "cpu")) == []


def test_bubblewrap_starts_with_a_gpu_file_bound_and_shows_it(monkeypatch, tmp_path):
    """The real bubblewrap, with a device file its /dev lacks standing in for /dev/nvidia0: it starts (a bind after
    /dev is made read-only made it refuse), the file is a character device inside, and /sys is readable."""
    try:
        if detect_isolation(want="bwrap").mode != "bwrap":
            pytest.skip("no bubblewrap here")
    except IsolationError as e:
        pytest.skip(f"no bubblewrap here: {e}")
    dev = a_device_bwrap_does_not_make()
    if dev is None:
        pytest.skip("no device file to stand in for the GPU's")
    monkeypatch.setattr(sandbox, "nvidia_device_nodes", lambda: [dev])
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    config = cfg(tmp_path, "cuda")
    argv = bwrap_base(config, empty) + bwrap_devices(config)
    r = subprocess.run(
        [*argv, "--", "sh", "-c", f"test -c {dev} && test -d /sys/class && ls /dev"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert Path(dev).name in r.stdout.split()
    r = subprocess.run(
        [*bwrap_base(cfg(tmp_path, "cpu"), empty), "--", "sh", "-c", f"test -e {dev}"], capture_output=True, timeout=60
    )
    assert r.returncode != 0  # on the CPU the sandbox's /dev stays minimal
