"""Gradescope's autograder harness, emulated from its documentation, not from how our bundle is built.

From https://gradescope-autograders.readthedocs.io/en/latest/specs/ :
- "Autograders are uploaded to Gradescope in zip format. The file must contain at least two files in the root of
  the archive: setup.sh ... run_autograder".
- "/autograder/source contains the extracted contents of your autograder zip file."
- "/autograder/run_autograder is where your autograder script gets copied to during the Docker image build
  process."
- "When the autograder executes, the working directory is /autograder."
- "/autograder/submission contains the student's submission, downloaded from Gradescope."
- "/autograder/results/results.json is where you put the test output ... This must be produced as a result of
  executing run_autograder." and "/autograder/results/stdout captures the output of run_autograder".
From .../troubleshooting/ : "Our default memory limit is 768MB", "We have a default overall timeout of 10
minutes", "each autograder is allocated 1/2 of a virtual CPU".
From the jonseitz/gradescope-pacman notes on the same harness: setup.sh "will execute as root ... only once,
during the Docker image creation".

`Image` lays out an /autograder folder (anywhere: run_autograder and setup.sh honour $AUTOGRADER_ROOT), extracts
the zip into source/, runs source/setup.sh there as root (its apt-get may be skipped where the machine lacks the
packages; its pip install may not) and copies run_autograder to the top. `Image.run` puts a submission in
submission/, runs /autograder/run_autograder from /autograder under the platform's limits (a cgroup of `cpus` and
`memory_mb` where one can be made, and the overall timeout), and reads results/results.json.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from tests.emulation import cgroups

# a root shell's environment in a Debian/Ubuntu image; pip's settings on this machine (its local wheel folders)
# are in /etc/xdg/pip/pip.conf, which the image's pip reads too
CLEAN_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "DEBIAN_FRONTEND": "noninteractive",
}
MEMORY_MB = 768
CPUS = 0.5
TIMEOUT = 600.0


def extract(zip_path: Path, dest: Path) -> None:
    """Unzip keeping the Unix permission bits (the scripts' executable bit), as `unzip` does."""
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            path = zf.extract(info, dest)
            mode = (info.external_attr >> 16) & 0o777
            if mode and not info.is_dir():
                os.chmod(path, mode)


@dataclass
class Outcome:
    results: dict | None  # results/results.json, parsed (None: missing or not JSON)
    raw: str  # its text
    stdout: str  # results/stdout: what run_autograder printed
    returncode: int | None  # None: killed by the platform's overall timeout
    seconds: float
    peak_mb: float  # the cgroup's peak memory (nan where no cgroup could be made)
    oom_kills: int
    limited: str  # the limits it ran under, in words
    leftover: list[int] = field(default_factory=list)  # processes still alive in the cgroup when it ended


class Image:
    """An /autograder folder built from one bundle by its own setup.sh."""

    def __init__(self, root: Path, bundle: Path, env: dict[str, str] | None = None, setup_timeout: float = 1800):
        self.root = root
        # the image's own environment, not this test's (whose PATH finds pyenv's Python under /root first)
        self.env = {**CLEAN_ENV, **(env or {}), "AUTOGRADER_ROOT": str(root)}
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o755)  # /autograder in the image: readable by every user, as a root-built image is
        source = root / "source"
        if source.exists():
            shutil.rmtree(source)
        source.mkdir()
        extract(bundle, source)
        missing = [f for f in ("setup.sh", "run_autograder") if not (source / f).is_file()]
        if missing:
            raise AssertionError(f"{bundle.name}: {missing} not at the root of the zip (Gradescope needs them there)")
        t0 = time.perf_counter()
        self.setup = subprocess.run(
            ["bash", str(source / "setup.sh")],
            cwd=source,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=setup_timeout,
        )
        self.setup_seconds = time.perf_counter() - t0
        if self.setup.returncode != 0:
            raise AssertionError(
                f"setup.sh failed with status {self.setup.returncode}:\n{self.setup.stdout[-3000:]}\n"
                f"{self.setup.stderr[-3000:]}"
            )
        shutil.copy2(source / "run_autograder", root / "run_autograder")
        os.chmod(root / "run_autograder", 0o755)

    def run(
        self,
        submission: dict[str, bytes | str] | Path,
        *,
        cpus: float | None = CPUS,
        memory_mb: int | None = MEMORY_MB,
        timeout: float = TIMEOUT,
        env: dict[str, str] | None = None,
        wrapper: list[str] | None = None,
    ) -> Outcome:
        """Grade one submission: `submission` maps paths under /autograder/submission to contents (loose files
        dragged in, or a zip's extracted tree), or is a folder copied there. `wrapper`: a command run_autograder is
        started through (tests.emulation.no_namespaces: Docker's seccomp profile)."""
        sub, results = self.root / "submission", self.root / "results"
        for d in (sub, results):
            if d.exists():
                shutil.rmtree(d)
        results.mkdir()
        if isinstance(submission, Path):
            shutil.copytree(submission, sub)
        else:
            sub.mkdir()
            for rel, data in submission.items():
                (sub / rel).parent.mkdir(parents=True, exist_ok=True)
                (sub / rel).write_bytes(data.encode() if isinstance(data, str) else data)
        why_not = cgroups.available() if (cpus or memory_mb) else "no limits asked for"
        group = cgroups.Limited(cpus or 64.0, memory_mb or 1 << 20) if why_not is None else None
        limited = (
            f"{cpus or 'all'} CPU, {memory_mb or 'unlimited'} MB (a cgroup)"
            if group
            else f"no cgroup ({why_not}); the overall timeout only"
        )
        t0 = time.perf_counter()
        with open(results / "stdout", "wb") as out:
            proc = subprocess.Popen(
                [*(wrapper or []), str(self.root / "run_autograder")],
                cwd=self.root,
                env={**self.env, **(env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=group.join if group else None,
                start_new_session=True,
            )
            try:
                code: int | None = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:  # the platform's overall timeout: the run is killed
                os.killpg(proc.pid, 9)
                proc.wait()
                code = None
        seconds = time.perf_counter() - t0
        peak, ooms, leftover = (group.peak_mb(), group.oom_killed(), group.pids()) if group else (float("nan"), 0, [])
        if group:
            group.remove()
        raw = (results / "results.json").read_text() if (results / "results.json").is_file() else ""
        try:
            parsed = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            parsed = None
        return Outcome(
            results=parsed,
            raw=raw,
            stdout=(results / "stdout").read_text(errors="replace"),
            returncode=code,
            seconds=seconds,
            peak_mb=peak,
            oom_kills=ooms,
            limited=limited,
            leftover=leftover,
        )


def executable(path: Path) -> bool:
    return bool(path.stat().st_mode & stat.S_IXUSR)
