"""
Tests of dlcv.data (and dlcv.vis): the CIFAR-10 loader on a small archive written here in CIFAR-10's own
format, the offline digits stand-in, data set selection and the course's preprocessing.
"""

import hashlib
import os
import pickle
import shutil
import struct
import tarfile
from typing import ClassVar

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import dlcv

NUM_PER_TRAIN_BATCH = 2  # 5 training batches -> 10 training images
NUM_TEST = 3


class _Py2Pickler(pickle._Pickler):
    """
    A pickler that writes `bytes` with the BINSTRING opcodes, i.e. as Python 2 `str`.

    The real CIFAR-10 batches were pickled by Python 2: their keys (b'data', b'labels', ...) and the numpy
    buffers are Python 2 strings, which Python 3 reads as bytes with encoding='bytes' (the course's own
    loaders) and as str with encoding='latin1' (torchvision). Python 3's pickler cannot write Python 2
    strings, so this one does; the pure-Python pickler is subclassed because its dispatch table is open.
    """

    dispatch: ClassVar[dict] = dict(pickle._Pickler.dispatch)

    def _save_py2_str(self, obj):
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str


def _dump_py2(obj, path):
    with open(path, "wb") as f:
        _Py2Pickler(f, protocol=2).dump(obj)


def _write_cifar_archive(root, seed=0):
    """
    Write a small CIFAR-10 copy under root/cifar-10-batches-py: data_batch_1..5 with NUM_PER_TRAIN_BATCH
    images each, test_batch with NUM_TEST images, batches.meta. Each batch is a dict with b'data' (uint8,
    (n, 3072): 1024 red, then 1024 green, then 1024 blue values, each 32x32 row-major), b'labels' (list of
    ints), b'batch_label' and b'filenames', like the real archive.

    Returns (train_data (10, 3072) uint8, train_labels list, test_data (3, 3072), test_labels, md5 by file).
    """
    rng = np.random.RandomState(seed)
    folder = os.path.join(root, "cifar-10-batches-py")
    os.makedirs(folder)
    batches = {}
    for i in range(1, 6):
        batches[f"data_batch_{i}"] = NUM_PER_TRAIN_BATCH
    batches["test_batch"] = NUM_TEST
    written = {}
    for filename, n in batches.items():
        data = rng.randint(0, 256, size=(n, 3072)).astype(np.uint8)
        labels = [int(v) for v in rng.randint(0, 10, size=n)]
        _dump_py2(
            {
                b"batch_label": f"{filename} of 6".encode(),
                b"labels": labels,
                b"data": data,
                b"filenames": [f"img_{filename}_{j}.png".encode() for j in range(n)],
            },
            os.path.join(folder, filename),
        )
        written[filename] = (data, labels)
    label_names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    meta = {b"num_cases_per_batch": NUM_PER_TRAIN_BATCH, b"label_names": label_names, b"num_vis": 3072}
    _dump_py2(meta, os.path.join(folder, "batches.meta"))

    md5 = {}
    for filename in list(batches) + ["batches.meta"]:
        with open(os.path.join(folder, filename), "rb") as f:
            md5[filename] = hashlib.md5(f.read()).hexdigest()
    train_data = np.concatenate([written[f"data_batch_{i}"][0] for i in range(1, 6)])
    train_labels = [label for i in range(1, 6) for label in written[f"data_batch_{i}"][1]]
    test_data, test_labels = written["test_batch"]
    return train_data, train_labels, test_data, test_labels, md5


def _accept_checksums(monkeypatch, md5):
    """
    torchvision checks every CIFAR-10 file against the md5 sums of the official archive, which a small
    archive cannot match. Point its checksum lists (class attributes of CIFAR10) at the md5 sums of the
    files written here: torchvision's own loading and integrity-checking code still runs, unchanged.
    """
    from torchvision.datasets import CIFAR10

    monkeypatch.setattr(CIFAR10, "train_list", [[f"data_batch_{i}", md5[f"data_batch_{i}"]] for i in range(1, 6)])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5["test_batch"]]])
    monkeypatch.setattr(CIFAR10, "meta", {"filename": "batches.meta", "key": "label_names", "md5": md5["batches.meta"]})


@pytest.fixture(autouse=True)
def _no_dataset_env(monkeypatch):
    """The tests choose data sets explicitly: a DLCV_* variable set in the caller's shell must not leak in."""
    monkeypatch.delenv("DLCV_DATASET", raising=False)
    monkeypatch.delenv("DLCV_CIFAR_ROOT", raising=False)


@pytest.fixture
def cifar_root(tmp_path, monkeypatch):
    """A small CIFAR-10 copy that torchvision accepts; yields (root, written arrays)."""
    root = tmp_path / "cifar"
    written = _write_cifar_archive(root)
    _accept_checksums(monkeypatch, written[-1])
    return root, written


# ---------------------------------------------------------------------------------------------------------
# load_cifar10


def test_fake_archive_reads_like_the_real_one(tmp_path):
    # The course's own loaders read the batches with encoding='bytes' and index them with bytes keys.
    _write_cifar_archive(tmp_path)
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_1", "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    assert set(batch) == {b"batch_label", b"labels", b"data", b"filenames"}
    assert batch[b"data"].dtype == np.uint8 and batch[b"data"].shape == (NUM_PER_TRAIN_BATCH, 3072)


def test_load_cifar10_shapes_dtypes_pixels_and_labels(cifar_root):
    root, (train_data, train_labels, test_data, test_labels, _) = cifar_root
    x_train, y_train, x_test, y_test = dlcv.load_cifar10(root)

    assert x_train.shape == (5 * NUM_PER_TRAIN_BATCH, 3, 32, 32) and x_train.dtype == torch.uint8
    assert x_test.shape == (NUM_TEST, 3, 32, 32) and x_test.dtype == torch.uint8
    assert y_train.dtype == torch.int64 and y_test.dtype == torch.int64
    assert y_train.tolist() == train_labels
    assert y_test.tolist() == test_labels
    # Channel-major rows: value 1024 * c + 32 * h + w of a row is pixel (c, h, w).
    for c, h, w in [(0, 0, 0), (1, 5, 7), (2, 31, 30), (0, 17, 3)]:
        assert x_train[3, c, h, w].item() == train_data[3, 1024 * c + 32 * h + w]
        assert x_test[2, c, h, w].item() == test_data[2, 1024 * c + 32 * h + w]
    assert torch.equal(x_train, torch.from_numpy(train_data.reshape(-1, 3, 32, 32)))
    assert torch.equal(x_test, torch.from_numpy(test_data.reshape(-1, 3, 32, 32)))


def test_load_cifar10_unpacks_the_official_archive_file(cifar_root):
    root, (train_data, *_) = cifar_root
    with tarfile.open(root / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(root / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    shutil.rmtree(root / "cifar-10-batches-py")
    assert dlcv.cifar10_available(root)

    x_train, *_ = dlcv.load_cifar10(root)

    assert torch.equal(x_train, torch.from_numpy(train_data.reshape(-1, 3, 32, 32)))


def test_load_cifar10_missing_archive_says_where_and_how(tmp_path):
    with pytest.raises(FileNotFoundError) as excinfo:
        dlcv.load_cifar10(tmp_path / "nowhere")
    message = str(excinfo.value)
    assert str(tmp_path / "nowhere") in message
    assert "download=True" in message and "cifar-10-python.tar.gz" in message
    assert not dlcv.cifar10_available(tmp_path / "nowhere")


def test_load_cifar10_damaged_copy_fails_torchvisions_checksum(tmp_path):
    # Without _accept_checksums the small archive does not match the official md5 sums.
    _write_cifar_archive(tmp_path)
    with pytest.raises(RuntimeError, match="incomplete or damaged") as excinfo:
        dlcv.load_cifar10(tmp_path)
    assert str(tmp_path) in str(excinfo.value)


# ---------------------------------------------------------------------------------------------------------
# load_digits_as_cifar


@pytest.fixture(scope="module")
def digits():
    return dlcv.load_digits_as_cifar()


def test_digits_shapes_dtypes_and_range(digits):
    x_train, y_train, x_test, y_test = digits
    assert x_train.shape == (1500, 3, 32, 32) and x_test.shape == (297, 3, 32, 32)
    assert x_train.dtype == torch.uint8 and x_test.dtype == torch.uint8
    assert y_train.shape == (1500,) and y_test.shape == (297,)
    assert y_train.dtype == torch.int64 and y_test.dtype == torch.int64
    assert x_train.min().item() == 0 and x_train.max().item() == 255
    assert torch.equal(x_train[:, 0], x_train[:, 1]) and torch.equal(x_train[:, 0], x_train[:, 2])
    assert set(y_train.tolist()) == set(range(10)) and set(y_test.tolist()) == set(range(10))


def test_digits_split_is_deterministic(digits):
    again = dlcv.load_digits_as_cifar()
    for a, b in zip(digits, again):
        assert torch.equal(a, b)


def test_the_digits_load_without_importing_scikit_learn():
    """scikit-learn's digits file is read where the package keeps it: importing scikit-learn costs every grading
    about two seconds. The images are checked against load_digits below."""
    import subprocess
    import sys

    code = "import sys, dlcv.data as d; d.load_digits_as_cifar(); print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_digits_images_are_the_sklearn_digits_upsampled_with_their_labels(digits):
    # Each image must be one of scikit-learn's digits, bilinearly upsampled to 32x32 and scaled from 0..16 to
    # 0..255, carrying that digit's label; together the two splits use every digit exactly once.
    from sklearn.datasets import load_digits

    original = load_digits()
    images = torch.as_tensor(original.images, dtype=torch.float64)[:, None]  # (1797, 1, 8, 8)
    expected = F.interpolate(images * (255.0 / 16.0), size=(32, 32), mode="bilinear", align_corners=False)
    expected = expected.round().to(torch.uint8)  # (1797, 1, 32, 32)
    label_of = {expected[i, 0].numpy().tobytes(): int(original.target[i]) for i in range(len(images))}
    assert len(label_of) == 1797  # the upsampled digits are all distinct

    x_train, y_train, x_test, y_test = digits
    seen = set()
    for x, y in zip(torch.cat([x_train, x_test]), torch.cat([y_train, y_test])):
        key = x[0].numpy().tobytes()
        assert key in label_of, "an image is not an upsampled sklearn digit"
        assert label_of[key] == y.item()
        seen.add(key)
    assert len(seen) == 1797


# ---------------------------------------------------------------------------------------------------------
# load_dataset


def test_load_dataset_auto_falls_back_to_digits(tmp_path, capsys):
    x_train, y_train, x_test, y_test, info = dlcv.load_dataset(root=tmp_path)
    assert info.name == "digits" and info.classes == tuple("0123456789")
    assert x_train.shape == (1500, 3, 32, 32) and (info.num_train, info.num_test) == (1500, 297)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "digits" in out and "stand-in for CIFAR-10" in out


def test_load_dataset_auto_uses_cifar10_when_present(cifar_root, capsys):
    root, (train_data, *_) = cifar_root
    x_train, y_train, x_test, y_test, info = dlcv.load_dataset("auto", root)
    assert info.name == "cifar10" and info.classes == dlcv.CIFAR10_CLASSES and info.source == str(root)
    assert x_train.shape == (10, 3, 32, 32)
    assert "CIFAR-10" in capsys.readouterr().out


def test_load_dataset_env_vars(cifar_root, monkeypatch):
    root, _ = cifar_root
    monkeypatch.setenv("DLCV_CIFAR_ROOT", str(root))
    assert dlcv.load_dataset()[-1].name == "cifar10"  # auto finds CIFAR-10 under $DLCV_CIFAR_ROOT
    monkeypatch.setenv("DLCV_DATASET", "digits")
    assert dlcv.load_dataset()[-1].name == "digits"  # $DLCV_DATASET overrides the default 'auto'
    assert dlcv.load_dataset("cifar10")[-1].name == "cifar10"  # an explicit name overrides $DLCV_DATASET
    monkeypatch.setenv("DLCV_DATASET", "mnist")
    with pytest.raises(ValueError, match=r"'mnist' \(from \$DLCV_DATASET\)"):
        dlcv.load_dataset()


def test_load_dataset_bad_name_lists_the_allowed_ones():
    with pytest.raises(ValueError) as excinfo:
        dlcv.load_dataset("imagenet")
    message = str(excinfo.value)
    assert "'imagenet'" in message and all(repr(n) in message for n in ("cifar10", "digits", "auto"))


def test_load_dataset_cifar10_requested_but_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="load_dataset\\('digits'\\)"):
        dlcv.load_dataset("cifar10", tmp_path)


# ---------------------------------------------------------------------------------------------------------
# preprocess_cifar10


def test_preprocess_shapes_split_and_dataset_key(digits):
    data = dlcv.preprocess_cifar10(dataset="digits")
    assert data["dataset"] == "digits"
    assert data["X_train"].shape == (1200, 3072) and data["X_val"].shape == (300, 3072)
    assert data["X_test"].shape == (297, 3072)
    assert data["y_train"].shape == (1200,) and data["y_val"].shape == (300,) and data["y_test"].shape == (297,)
    assert data["X_train"].dtype == torch.float32 and data["y_train"].dtype == torch.int64
    # The validation set is the last 20% of the training images, in order.
    x_train, y_train, _, y_test = digits
    assert torch.equal(data["y_train"], y_train[:1200]) and torch.equal(data["y_val"], y_train[1200:])
    assert torch.equal(data["y_test"], y_test)


def test_preprocess_scales_and_subtracts_the_training_channel_mean(digits):
    data = dlcv.preprocess_cifar10(dataset="digits", flatten=False, dtype=torch.float64)
    assert data["X_train"].shape == (1200, 3, 32, 32) and data["X_train"].dtype == torch.float64
    whole_train = torch.cat([data["X_train"], data["X_val"]])  # the mean is taken over all training images
    channel_mean = whole_train.mean(dim=(0, 2, 3))  # (3,)
    assert channel_mean.abs().max().item() < 1e-10

    x_train, _, x_test, _ = digits
    mean = (x_train.to(torch.float64) / 255).mean(dim=(0, 2, 3), keepdim=True)  # (1, 3, 1, 1)
    expected_test = x_test.to(torch.float64) / 255 - mean
    assert torch.allclose(data["X_test"], expected_test, atol=1e-12)
    assert torch.allclose(data["X_val"], x_train[1200:].to(torch.float64) / 255 - mean, atol=1e-12)


def test_preprocess_bias_trick_and_validation_ratio():
    data = dlcv.preprocess_cifar10(dataset="digits", bias_trick=True, validation_ratio=0.1)
    assert data["X_train"].shape == (1350, 3073) and data["X_val"].shape == (150, 3073)
    assert data["X_test"].shape == (297, 3073)
    for key in ("X_train", "X_val", "X_test"):
        assert torch.all(data[key][:, -1] == 1)
    with pytest.raises(ValueError, match="flatten"):
        dlcv.preprocess_cifar10(dataset="digits", bias_trick=True, flatten=False)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_preprocess_on_cuda():
    data = dlcv.preprocess_cifar10(dataset="digits", cuda=True)
    for key in ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test"):
        assert data[key].is_cuda, key


def test_preprocess_on_cifar10_archive(cifar_root):
    root, _ = cifar_root
    data = dlcv.preprocess_cifar10(root=root)  # auto: the archive is there
    assert data["dataset"] == "cifar10"
    assert data["X_train"].shape == (8, 3072) and data["X_val"].shape == (2, 3072) and data["X_test"].shape == (3, 3072)


# ---------------------------------------------------------------------------------------------------------
# dlcv.vis


def test_tensor_to_image():
    x = torch.tensor([0.0, 0.5, 1.0, 2.0]).reshape(1, 2, 2).expand(3, 2, 2)  # (3, 2, 2) float
    image = dlcv.tensor_to_image(x)
    assert image.shape == (2, 2, 3) and image.dtype == np.uint8
    assert image[:, :, 0].tolist() == [[0, 128], [255, 255]]
    x8 = torch.arange(12, dtype=torch.uint8).reshape(3, 2, 2)
    assert dlcv.tensor_to_image(x8).tolist() == x8.permute(1, 2, 0).tolist()


def test_visualize_dataset_grid(digits):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x_train, y_train, _, _ = digits
    dlcv.reset_seed(0)
    grid = dlcv.visualize_dataset(x_train, y_train, 4, dlcv.DIGITS_CLASSES)
    assert grid.shape == (10 * 34 + 2, 4 * 34 + 2, 3) and grid.dtype == np.uint8
    assert len(plt.gca().texts) == 10  # one class name per row
    plt.close("all")
    dlcv.reset_seed(0)
    assert np.array_equal(grid, dlcv.visualize_dataset(x_train, y_train, 4, dlcv.DIGITS_CLASSES, label_rows=False))
    # Every image in row r shows class r: compare a cell with the images of that class.
    cell = torch.from_numpy(grid[2 + 34 * 7 : 2 + 34 * 7 + 32, 2 : 2 + 32]).permute(2, 0, 1)  # (3, 32, 32)
    assert any(torch.equal(cell, img) for img in x_train[y_train == 7])


def test_the_grader_hides_the_places_the_loader_reads(tmp_path, monkeypatch):
    """grader.course.datafiles finds the label files without PyTorch; it must name the CIFAR-10 root the loader
    reads (argument, $DLCV_CIFAR_ROOT, default) and the digits file it reads, or the sandbox would leave them open."""
    from dlcv.data import _resolve_root, _sklearn_digits_file
    from grader.course.datafiles import cifar_root, label_files

    for root in (None, str(tmp_path / "given")):
        assert cifar_root(root) == _resolve_root(root)
        monkeypatch.setenv("DLCV_CIFAR_ROOT", str(tmp_path / "from-env"))
        assert cifar_root(root) == _resolve_root(root)
        monkeypatch.delenv("DLCV_CIFAR_ROOT")
    hidden = label_files()
    assert os.path.abspath(_resolve_root(None)) in hidden
    assert _sklearn_digits_file() in hidden
