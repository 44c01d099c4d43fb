"""One emulated Gradescope machine for the platform tests: the release is built once, and each assignment's
bundle is installed by its own setup.sh into one /autograder folder in turn (as Gradescope builds an image per
assignment; the virtual environment is kept between them, so the second and third builds reuse PyTorch instead of
unpacking it again: that saves minutes and changes nothing setup.sh decides)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from grader.kit.release import release
from tests.conftest import ROOT
from tests.emulation.gradescope import Image


@pytest.fixture(scope="session")
def released(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("platform-release")
    return release(ROOT, out)


class Machine:
    def __init__(self, released: dict[str, Path]) -> None:
        self.released = released
        # outside /root and pytest's own folder (0700): an unprivileged user must be able to read the image's
        # Python, as on Gradescope. $GRADER_TEST_IMAGE keeps one between runs while developing.
        keep = os.environ.get("GRADER_TEST_IMAGE")
        if keep:
            self.root = Path(keep)
        else:
            made = Path(tempfile.mkdtemp(prefix="autograder-", dir="/var/tmp"))
            made.chmod(0o755)  # mkdtemp makes it 0700: `nobody` could not reach the image's Python below it
            self.root = made / "autograder"
        self.keep = bool(keep)
        self.current: str | None = None
        self.image: Image | None = None

    def build(self, assignment: str) -> Image:
        if self.current != assignment:
            self.image = Image(self.root, self.released[f"autograder {assignment}"])
            self.current = assignment
        assert self.image is not None
        return self.image

    def close(self) -> None:
        if not self.keep:
            shutil.rmtree(self.root.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def gradescope(released):
    if os.geteuid() != 0:
        pytest.skip("setup.sh runs as root (as on Gradescope); these tests need root")
    machine = Machine(released)
    yield machine
    machine.close()
