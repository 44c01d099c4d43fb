"""
Data sets for the assignments: CIFAR-10, and an offline stand-in with the same layout.

- `load_cifar10(root)`: the real data, read with torchvision from a local copy (downloaded only on request).
- `load_digits_as_cifar()`: scikit-learn's 8x8 digits, shipped inside the scikit-learn package, presented in
  CIFAR-10's layout (uint8 images of shape (3, 32, 32), int64 labels 0..9) so that every default model
  runs unchanged on machines without CIFAR-10 (CI, graders with no network).
- `load_dataset(name)`: picks one of the two (CIFAR-10 when it is on disk, else digits) and says which.
- `preprocess_cifar10(...)`: the course's preprocessing (scale, per-channel mean, flatten, bias trick,
  validation split), on whichever data set `load_dataset` picks.

Environment variables: `DLCV_DATASET` ('cifar10', 'digits' or 'auto') sets the default data set;
`DLCV_CIFAR_ROOT` sets the default CIFAR-10 root folder (the one holding `cifar-10-batches-py/`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F

CIFAR10_CLASSES = ("plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
DIGITS_CLASSES = tuple(str(digit) for digit in range(10))
DATASET_NAMES = ("cifar10", "digits", "auto")
DEFAULT_CIFAR_ROOT = os.path.join(".", "data", "cifar-10")

_CIFAR_FOLDER = "cifar-10-batches-py"  # what the official archive unpacks to, and what torchvision reads
_CIFAR_TARBALL = "cifar-10-python.tar.gz"  # the official archive's file name
_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"

DIGITS_NUM_TRAIN = 1500  # of the 1797 digits: 1500 train (5 folds of 300), 297 test
DIGITS_SPLIT_SEED = 0  # seeds the fixed permutation behind the train/test split


@dataclass(frozen=True)
class DatasetInfo:
    """What `load_dataset` loaded."""

    name: str  # 'cifar10' or 'digits'
    classes: tuple[str, ...]  # class names, indexed by label
    source: str  # where the images came from: the CIFAR-10 root folder, or the scikit-learn loader
    num_train: int
    num_test: int


def cifar10_available(root: str | os.PathLike | None = None) -> bool:
    """
    Whether a copy of CIFAR-10 is on disk under root: the unpacked `cifar-10-batches-py/` folder or the
    official archive `cifar-10-python.tar.gz`.

    Inputs:
    - root: the CIFAR-10 root folder; None means $DLCV_CIFAR_ROOT, else ./data/cifar-10.
    """
    root = _resolve_root(root)
    return os.path.isdir(os.path.join(root, _CIFAR_FOLDER)) or os.path.isfile(os.path.join(root, _CIFAR_TARBALL))


def load_cifar10(
    root: str | os.PathLike, download: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """
    Load CIFAR-10 with torchvision from root, as uint8 images and int64 labels.

    root is the folder that holds (or will hold) `cifar-10-batches-py/`. If only the official archive
    `cifar-10-python.tar.gz` is there, it is unpacked first. With download=True a missing copy is
    downloaded (needs the network).

    Inputs:
    - root: the CIFAR-10 root folder.
    - download: whether to download CIFAR-10 when it is not under root.

    Returns a tuple of:
    - x_train: uint8 tensor of shape (50000, 3, 32, 32), pixel values 0..255.
    - y_train: int64 tensor of shape (50000,), labels 0..9 (names in CIFAR10_CLASSES).
    - x_test: uint8 tensor of shape (10000, 3, 32, 32).
    - y_test: int64 tensor of shape (10000,).

    Raises FileNotFoundError when CIFAR-10 is not under root and download is False.
    """
    from torchvision.datasets import CIFAR10

    root = os.fspath(root)
    folder = os.path.join(root, _CIFAR_FOLDER)
    tarball = os.path.join(root, _CIFAR_TARBALL)
    if not download and not os.path.isdir(folder):
        if not os.path.isfile(tarball):
            raise FileNotFoundError(
                f"CIFAR-10 not found under {root!r}: expected the folder {folder!r}. "
                f"To get it, call load_cifar10({root!r}, download=True) on a machine with network access, "
                f"or download {_CIFAR_URL} and unpack it into {root!r}. "
                f"Without CIFAR-10, use the offline stand-in: load_dataset('digits')."
            )
        from torchvision.datasets.utils import extract_archive

        extract_archive(tarball, root)

    try:
        train_set = CIFAR10(root, train=True, download=download)
        test_set = CIFAR10(root, train=False, download=download)
    except RuntimeError as error:  # torchvision's md5 check failed: a partial or damaged copy
        raise RuntimeError(
            f"CIFAR-10 under {root!r} is incomplete or damaged ({error}). "
            f"Delete {folder!r} and download it again (load_cifar10({root!r}, download=True))."
        ) from error

    x_train, y_train = _cifar_tensors(train_set)
    x_test, y_test = _cifar_tensors(test_set)
    return x_train, y_train, x_test, y_test


def _cifar_tensors(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """torchvision's CIFAR10 keeps images as a numpy (N, 32, 32, 3) uint8 array; return (N, 3, 32, 32)."""
    x = torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous()  # (N, 3, 32, 32) uint8
    y = torch.tensor(dataset.targets, dtype=torch.int64)  # (N,)
    return x, y


def _sklearn_digits_file() -> str | None:
    """The path of scikit-learn's digits.csv.gz (what sklearn.datasets.load_digits reads), found without importing
    scikit-learn; None where it is not there."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("sklearn")
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(folder, "datasets", "data", "digits.csv.gz")
        if os.path.isfile(path):
            return path
    return None


def load_digits_as_cifar() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """
    Load scikit-learn's handwritten digits in CIFAR-10's layout: the offline stand-in for CIFAR-10.

    The 1797 grey 8x8 images (values 0..16) are upsampled to 32x32 by bilinear interpolation, scaled to
    0..255, rounded and copied into 3 identical colour channels. A fixed permutation (seed
    DIGITS_SPLIT_SEED) splits them into 1500 training and 297 test images, the same on every call and
    every machine. Labels are the digits 0..9 (names in DIGITS_CLASSES).

    Returns a tuple of:
    - x_train: uint8 tensor of shape (1500, 3, 32, 32), pixel values 0..255.
    - y_train: int64 tensor of shape (1500,), labels 0..9.
    - x_test: uint8 tensor of shape (297, 3, 32, 32).
    - y_test: int64 tensor of shape (297,).
    """
    # a copy of scikit-learn's digits.csv.gz (the grader gives its notebook kernel one where it must), else the one
    # in scikit-learn's package, read without importing scikit-learn (which takes seconds)
    copy = os.environ.get("DLCV_DIGITS_FILE") or _sklearn_digits_file()
    if copy:
        import numpy as np

        # what sklearn.datasets.load_digits does: load_gzip_compressed_csv_data("digits.csv.gz", delimiter=","),
        # the last column the target, the 64 others the 8x8 image
        data = np.loadtxt(copy, delimiter=",")
        flat, target = data[:, :-1], data[:, -1].astype(int)
    else:
        from sklearn.datasets import load_digits

        digits = load_digits()
        flat, target = digits.data, digits.target
    images = torch.as_tensor(flat.reshape(-1, 8, 8), dtype=torch.float32)  # (1797, 8, 8), values 0..16
    labels = torch.as_tensor(target, dtype=torch.int64)  # (1797,)
    N = images.shape[0]

    x = F.interpolate(images[:, None], size=(32, 32), mode="bilinear", align_corners=False)  # (N, 1, 32, 32)
    x = (x * (255.0 / 16.0)).round().clamp(0, 255).to(torch.uint8)  # (N, 1, 32, 32), 0..255
    x = x.expand(N, 3, 32, 32).contiguous()  # (N, 3, 32, 32), three identical channels

    generator = torch.Generator().manual_seed(DIGITS_SPLIT_SEED)
    order = torch.randperm(N, generator=generator)  # (N,)
    train_idx, test_idx = order[:DIGITS_NUM_TRAIN], order[DIGITS_NUM_TRAIN:]
    return x[train_idx], labels[train_idx], x[test_idx], labels[test_idx]


def load_dataset(
    name: str | None = None, root: str | os.PathLike | None = None, *, download: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, DatasetInfo]:
    """
    Load the course's data set, CIFAR-10 or its offline stand-in, and print one line saying which.

    Inputs:
    - name: 'cifar10', 'digits' or 'auto' (CIFAR-10 if it is on disk under root, else digits). None means
      $DLCV_DATASET, else 'auto'.
    - root: the CIFAR-10 root folder; None means $DLCV_CIFAR_ROOT, else ./data/cifar-10.
    - download: with 'cifar10' (or 'auto'), download CIFAR-10 into root if it is missing.

    Returns a tuple of:
    - x_train: uint8 tensor of shape (N_train, 3, 32, 32).
    - y_train: int64 tensor of shape (N_train,).
    - x_test: uint8 tensor of shape (N_test, 3, 32, 32).
    - y_test: int64 tensor of shape (N_test,).
    - info: DatasetInfo; info.name is the data set used ('cifar10' or 'digits'), info.classes its class names.

    Raises ValueError for an unknown name.
    """
    name = _resolve_name(name)
    root = _resolve_root(root)
    if name == "auto":
        name = "cifar10" if download or cifar10_available(root) else "digits"

    if name == "cifar10":
        x_train, y_train, x_test, y_test = load_cifar10(root, download=download)
        info = DatasetInfo("cifar10", CIFAR10_CLASSES, root, x_train.shape[0], x_test.shape[0])
        print(f"Data set: CIFAR-10 from {root} ({info.num_train} training, {info.num_test} test images)")
    else:
        x_train, y_train, x_test, y_test = load_digits_as_cifar()
        source = "sklearn.datasets.load_digits"
        info = DatasetInfo("digits", DIGITS_CLASSES, source, x_train.shape[0], x_test.shape[0])
        print(
            f"Data set: digits, the offline stand-in for CIFAR-10 (scikit-learn's 8x8 digits as 3x32x32 images; "
            f"{info.num_train} training, {info.num_test} test images)"
        )
    return x_train, y_train, x_test, y_test, info


def preprocess_cifar10(
    cuda: bool = False,
    show_examples: bool = False,
    bias_trick: bool = False,
    flatten: bool = True,
    validation_ratio: float = 0.2,
    dtype: torch.dtype = torch.float32,
    dataset: str | None = None,
    root: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
) -> dict:
    """
    Load the data set (see `load_dataset`) and preprocess it the way the course does:

    1. scale the pixels to [0, 1] (divide by 255) in the given dtype;
    2. subtract the per-channel mean of the training images (all of them, validation part included) from
       the training and the test images;
    3. optionally flatten each image into a row of 3 * 32 * 32 = 3072 numbers;
    4. optionally append a constant 1 to each row (the bias trick), making 3073 numbers;
    5. keep the last `validation_ratio` of the training images as the validation set.

    Inputs:
    - cuda: put the tensors on the GPU ('cuda'); ignored when device is given.
    - show_examples: show a grid of training images per class (needs matplotlib).
    - bias_trick: append a column of ones (needs flatten=True).
    - flatten: reshape the images to (N, 3072).
    - validation_ratio: the fraction of the training images held out for validation, in [0, 1).
    - dtype: the floating-point dtype of the images.
    - dataset: 'cifar10', 'digits', 'auto' or None, as `load_dataset`'s name.
    - root: the CIFAR-10 root folder, as in `load_dataset`.
    - device: the device for the tensors (overrides cuda).

    Returns a dict with (D = 3072, or 3073 with the bias trick; images stay (3, 32, 32) without flatten):
    - 'X_train': tensor of shape (N_train, D), dtype as given; 'y_train': int64 tensor of shape (N_train,).
    - 'X_val': tensor of shape (N_val, D); 'y_val': int64 tensor of shape (N_val,).
    - 'X_test': tensor of shape (N_test, D); 'y_test': int64 tensor of shape (N_test,).
    - 'dataset': the name of the data set used, 'cifar10' or 'digits'.
    """
    if bias_trick and not flatten:
        raise ValueError("preprocess_cifar10: bias_trick=True needs flatten=True (the ones form a new column)")
    if not 0.0 <= validation_ratio < 1.0:
        raise ValueError(f"preprocess_cifar10: validation_ratio must be in [0, 1), got {validation_ratio}")
    if device is None:
        device = "cuda" if cuda else "cpu"

    x_train, y_train, x_test, y_test, info = load_dataset(dataset, root)
    if show_examples:
        import matplotlib.pyplot as plt

        from .vis import visualize_dataset

        plt.imshow(visualize_dataset(x_train, y_train, 12, info.classes))
        plt.axis("off")
        plt.show()

    # Move the compact uint8 images first, then convert on the device.
    X_train = x_train.to(device=device).to(dtype).div_(255)  # (N, 3, 32, 32)
    X_test = x_test.to(device=device).to(dtype).div_(255)  # (N_test, 3, 32, 32)
    y_train = y_train.to(device=device)
    y_test = y_test.to(device=device)

    mean_image = X_train.mean(dim=(0, 2, 3), keepdim=True)  # (1, 3, 1, 1)
    X_train -= mean_image
    X_test -= mean_image

    if flatten:
        X_train = X_train.reshape(X_train.shape[0], -1)  # (N, 3072)
        X_test = X_test.reshape(X_test.shape[0], -1)  # (N_test, 3072)
    if bias_trick:
        ones_train = torch.ones(X_train.shape[0], 1, dtype=dtype, device=X_train.device)  # (N, 1)
        ones_test = torch.ones(X_test.shape[0], 1, dtype=dtype, device=X_test.device)  # (N_test, 1)
        X_train = torch.cat([X_train, ones_train], dim=1)  # (N, 3073)
        X_test = torch.cat([X_test, ones_test], dim=1)  # (N_test, 3073)

    N = X_train.shape[0]
    num_val = round(N * validation_ratio)
    num_train = N - num_val
    return {
        "X_train": X_train[:num_train],
        "y_train": y_train[:num_train],
        "X_val": X_train[num_train:],
        "y_val": y_train[num_train:],
        "X_test": X_test,
        "y_test": y_test,
        "dataset": info.name,
    }


def _resolve_name(name: str | None) -> str:
    where = ""
    if name is None:
        name = os.environ.get("DLCV_DATASET") or "auto"
        where = " (from $DLCV_DATASET)" if os.environ.get("DLCV_DATASET") else ""
    resolved = str(name).strip().lower()
    if resolved not in DATASET_NAMES:
        allowed = ", ".join(repr(n) for n in DATASET_NAMES)
        raise ValueError(f"unknown data set {name!r}{where}: expected one of {allowed}")
    return resolved


def _resolve_root(root: str | os.PathLike | None) -> str:
    if root is None:
        root = os.environ.get("DLCV_CIFAR_ROOT") or DEFAULT_CIFAR_ROOT
    return os.fspath(root)
