"""Where the course's test labels lie on this machine, found without importing PyTorch: the judge hides these from
the code it grades (grader.sandbox.isolation), and it starts a grading's worker before it imports PyTorch itself
(grader.judge.opening).

The kit's loader (dlcv.data) reads the same places: CIFAR-10 under $DLCV_CIFAR_ROOT, else ./data/cifar-10
(tests/dlcv/test_data.py keeps the two in step), and scikit-learn's digits file inside the scikit-learn package.
"""

from __future__ import annotations

import importlib.util
import os

CIFAR_ROOT_VARIABLE = "DLCV_CIFAR_ROOT"
DEFAULT_CIFAR_ROOT = os.path.join(".", "data", "cifar-10")


def cifar_root(root: str | os.PathLike | None = None) -> str:
    """The CIFAR-10 root folder: `root`, else $DLCV_CIFAR_ROOT, else ./data/cifar-10 (as given, not resolved)."""
    if root is None:
        root = os.environ.get(CIFAR_ROOT_VARIABLE) or DEFAULT_CIFAR_ROOT
    return os.fspath(root)


def label_files(root: str | os.PathLike | None = None) -> list[str]:
    """The files and folders from which a data set's test labels could be read: the CIFAR-10 root and
    scikit-learn's digits files."""
    out = [os.path.abspath(cifar_root(root))]
    try:
        spec = importlib.util.find_spec("sklearn")
    except (ImportError, ValueError):
        spec = None
    for base in (spec.submodule_search_locations or []) if spec else []:
        data = os.path.join(base, "datasets", "data")
        if os.path.isdir(data):
            out += [os.path.join(data, f) for f in sorted(os.listdir(data)) if f.startswith("digits")]
    return out
