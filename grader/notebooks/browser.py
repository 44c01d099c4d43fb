"""Headless Chromium, for the report's PDF: found on this machine, started with no network and a throw-away
profile, printing a page from disk."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

CHROMIUM_TIMEOUT = 180.0
CHROMIUM_HELP = (
    "install Chromium (Debian/Ubuntu: sudo apt-get install chromium; `make system` does it where it "
    "can), or set $CHROMIUM to a Chrome or Chromium executable; or open report.html in a browser "
    "and print it to PDF"
)


def chromium() -> str | None:
    """A Chromium or Chrome executable: $CHROMIUM, else the first one on PATH."""
    exe = os.environ.get("CHROMIUM")
    if exe:
        return shutil.which(exe) or (exe if os.path.isfile(exe) else None)
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def browser_argv(exe: str, profile: Path) -> list[str]:
    """Headless Chromium on a local, script-free page: no network, a throwaway profile."""
    argv = [
        exe,
        "--headless",
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-sync",
        "--mute-audio",
        f"--user-data-dir={profile}",
        "--proxy-server=127.0.0.1:9",
        "--proxy-bypass-list=<-loopback>",
    ]
    if os.getuid() == 0:
        argv.append("--no-sandbox")  # Chromium's own sandbox refuses root; the page runs no script anyway
    return argv


def print_pdf(page: Path, pdf: Path, timeout: float = CHROMIUM_TIMEOUT) -> str:
    """Print `page` to `pdf` with headless Chromium; "" when done, else why not (a sentence)."""
    exe = chromium()
    if exe is None:
        return f"report.pdf was not written: Chromium is not installed. To get the PDF, {CHROMIUM_HELP}."
    with tempfile.TemporaryDirectory(prefix="grader-chromium-") as profile:
        tmp = pdf.with_name(f".{pdf.stem}.tmp.pdf")
        argv = [
            *browser_argv(exe, Path(profile)),
            "--no-pdf-header-footer",
            f"--print-to-pdf={tmp}",
            page.resolve().as_uri(),
        ]
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as e:
            tmp.unlink(missing_ok=True)
            return f"report.pdf was not written: Chromium failed ({type(e).__name__}: {e})."
        if r.returncode != 0 or not tmp.is_file() or tmp.stat().st_size == 0:
            tmp.unlink(missing_ok=True)
            return (
                f"report.pdf was not written: Chromium exited with status {r.returncode} "
                f"({(r.stderr or '').strip()[-300:]})."
            )
        os.replace(tmp, pdf)
    return ""
