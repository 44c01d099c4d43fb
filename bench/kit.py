"""The student kit as a student meets it: `make install` in a fresh kit (wall time, size on disk, which PyTorch
build it chose) and the first `make grade A=a1_knn` after it. Slow (a real install: minutes, GB), so it runs only
when asked: `make bench ARGS="--only kit"`.

Both ways where this machine allows: TORCH=auto (the CPU-only build where no NVIDIA GPU answers) and TORCH=cuda.
Where PyTorch's CPU index cannot be reached, auto falls back to the default index, so both ways install the same
build: the second install is skipped and the row says so.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Row

ROOT = Path(__file__).resolve().parent.parent
# which build the kit's environment holds
BUILD = "import json, torch; print(json.dumps({'version': torch.__version__, 'cuda': torch.version.cuda}))"


def _du_mb(path: Path) -> float:
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            p = Path(dirpath) / f
            if not p.is_symlink():
                total += p.stat().st_size
    return total / 2**20


def _make(kit: Path, *args: str, timeout: float = 3600) -> tuple[float, subprocess.CompletedProcess]:
    env = {**os.environ, "MAKEFLAGS": ""}
    env.pop("VIRTUAL_ENV", None)
    t0 = time.perf_counter()
    proc = subprocess.run(["make", *args], cwd=kit, capture_output=True, text=True, env=env, timeout=timeout)
    return time.perf_counter() - t0, proc


def _install(kit: Path, torch_choice: str) -> tuple[float, dict, subprocess.CompletedProcess]:
    wall, proc = _make(kit, "install", f"TORCH={torch_choice}")
    if proc.returncode != 0:
        raise RuntimeError(f"make install TORCH={torch_choice} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    py = kit / ".venv" / "bin" / "python"
    build = subprocess.run([str(py), "-c", BUILD], capture_output=True, text=True, check=True).stdout
    import json

    site = next((kit / ".venv" / "lib").glob("python3*/site-packages"))
    return wall, {**json.loads(build), "venv_mb": _du_mb(kit / ".venv"), "nvidia_mb": _du_mb(site / "nvidia")}, proc


def _score(stdout: str) -> str:
    total = [line for line in stdout.splitlines() if line.startswith("Total: ")]
    return total[-1].split("  (")[0].removeprefix("Total: ") if total else "?"


def run(repeat: int = 1) -> list[Row]:
    from grader.kit.release import release

    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-kit-") as tmp:
        paths = release(ROOT, Path(tmp) / "release")
        kit = paths["student kit"]
        try:
            wall, info, proc = _install(kit, "auto")
        except (RuntimeError, subprocess.SubprocessError) as e:  # offline, no make, ...: said in the table
            return [Row("kit", "make install (fresh kit, TORCH=auto)", 0.0, "", None, "s", note=f"failed: {e}"[:300])]
        out = (proc.stdout + proc.stderr).strip().splitlines()
        # pip's complaint about a missing local index of this machine's pip configuration is not the kit's
        noise = [line for line in out if line.startswith("WARNING: Location 'file:")]
        lines = f"{len(out) - len(noise)} lines of output" + (
            f" (+{len(noise)} of pip about local indexes)" if noise else ""
        )
        build = f"torch {info['version']}, " + (f"CUDA {info['cuda']}" if info["cuda"] else "CPU only")
        fell_back = "could not be reached" in proc.stdout
        rows.append(
            Row(
                "kit",
                "make install (fresh kit, TORCH=auto)",
                wall,
                "",
                None,
                "s",
                note=f"{build}; {lines}" + ("; PyTorch's CPU index unreachable: fell back" if fell_back else ""),
            )
        )
        rows.append(
            Row(
                "kit",
                "  .venv on disk (TORCH=auto)",
                info["venv_mb"],
                "",
                None,
                "MB",
                note=f"of which NVIDIA's CUDA libraries {info['nvidia_mb']:.0f} MB",
            )
        )
        first, grade = _make(kit, "grade", "A=a1_knn")
        rows.append(
            Row(
                "kit",
                "first make grade A=a1_knn (after the install)",
                first,
                "make install",
                wall,
                "s",
                note=f"exit {grade.returncode}; the fresh kit's stubs score {_score(grade.stdout)}",
            )
        )
        if info["cuda"]:
            rows.append(
                Row(
                    "kit",
                    "make install TORCH=cuda",
                    0.0,
                    "",
                    None,
                    "s",
                    note="skipped: TORCH=auto already installed the CUDA build here",
                )
            )
        else:
            with tempfile.TemporaryDirectory(prefix="bench-kit-cuda-") as tmp2:
                kit2 = release(ROOT, Path(tmp2) / "release")["student kit"]
                wall2, info2, _ = _install(kit2, "cuda")
                rows.append(Row("kit", "make install TORCH=cuda", wall2, "TORCH=auto", wall, "s"))
                rows.append(
                    Row("kit", "  .venv on disk (TORCH=cuda)", info2["venv_mb"], "TORCH=auto", info["venv_mb"], "MB")
                )
    return rows


if __name__ == "__main__":
    from bench.common import render

    print(render(run()))
    sys.exit(0)
