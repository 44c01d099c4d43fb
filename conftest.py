"""pytest's options for this repository (here, at the root, so that pytest knows them before it reads any other
argument: `pytest --assignment a1_knn` would otherwise take a1_knn for a folder of tests). The fixtures are in
tests/conftest.py."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent


def pytest_addoption(parser):
    parser.addoption(
        "--assignment",
        action="append",
        default=[],
        metavar="NAME",
        help="only the tests of this assignment (`make test-assignment A=NAME`): modules marked "
        "pytest.mark.assignment(NAME), and tests with a parameter `assignment` equal to NAME",
    )


def pytest_configure(config):
    config.addinivalue_line("markers", "assignment(name): the tests of one assignment (make test-assignment A=name)")


def _assignments_of(item) -> set[str]:
    names = {n for m in item.iter_markers("assignment") for n in m.args}
    params = getattr(getattr(item, "callspec", None), "params", {})
    if isinstance(params.get("assignment"), str):
        names.add(params["assignment"])
    return names


def pytest_collection_modifyitems(config, items):
    wanted = config.getoption("assignment")
    if wanted:
        from grader.course import manifest

        known = manifest.available(ROOT)
        unknown = [w for w in wanted if w not in known]
        if unknown:
            raise pytest.UsageError(f"--assignment {unknown[0]}: no such assignment; the course has {', '.join(known)}")
        keep = [i for i in items if _assignments_of(i) & set(wanted)]
        config.hook.pytest_deselected(items=[i for i in items if i not in keep])
        items[:] = keep
