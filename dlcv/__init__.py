"""
dlcv: the helpers that the assignments and notebooks import (the course's `eecs598` package).

    import dlcv
    dlcv.reset_seed(0)
    data = dlcv.preprocess_cifar10(bias_trick=True)   # CIFAR-10 if on disk, else the offline digits
    dlcv.rel_error(a, b)

Importing dlcv is cheap: torchvision, scikit-learn and matplotlib are imported only by the functions that
need them.
"""

from .data import (
    CIFAR10_CLASSES,
    DIGITS_CLASSES,
    DatasetInfo,
    cifar10_available,
    load_cifar10,
    load_dataset,
    load_digits_as_cifar,
    preprocess_cifar10,
)
from .grad import compute_numeric_gradient, grad_check_sparse, rel_error
from .selfcheck import check
from .solver import Solver
from .submit import make_submission
from .utils import reset_seed
from .vis import tensor_to_image, visualize_dataset

__all__ = [
    "CIFAR10_CLASSES",
    "DIGITS_CLASSES",
    "DatasetInfo",
    "Solver",
    "check",
    "cifar10_available",
    "compute_numeric_gradient",
    "grad_check_sparse",
    "load_cifar10",
    "load_dataset",
    "load_digits_as_cifar",
    "make_submission",
    "preprocess_cifar10",
    "rel_error",
    "reset_seed",
    "tensor_to_image",
    "visualize_dataset",
]
