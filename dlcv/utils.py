"""Small utilities shared by the assignments: seeding."""

from __future__ import annotations

import random

import torch


def reset_seed(number: int) -> None:
    """
    Seed every random number generator the course uses, so that a run can be repeated exactly.

    Seeds Python's `random`, PyTorch on the CPU and on every CUDA device (when CUDA is available), and
    NumPy's global generator (when NumPy is installed).

    Inputs:
    - number: the seed, a non-negative int.
    """
    random.seed(number)
    torch.manual_seed(number)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(number)
    try:
        import numpy as np
    except ImportError:
        return
    np.random.seed(number)
