"""Taking in submissions: only manifest files, safe unzip, flexible layouts, clear errors."""

import stat
import zipfile

import pytest

from grader import manifest
from grader.intake import stage
from grader.manifest import GraderError


@pytest.fixture(scope="module")
def a1(root):
    return manifest.load("a1_knn", root)


def make_zip(path, entries):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            if isinstance(data, zipfile.ZipInfo):
                zf.writestr(data, "target")
            else:
                zf.writestr(name, data)
    return path


def test_only_manifest_files_are_taken_and_the_rest_comes_from_the_kit(a1, root, tmp_path):
    sub = tmp_path / "sub" / "a1_knn"
    sub.mkdir(parents=True)
    (sub / "knn.py").write_text("X = 1\n")
    (sub / "__init__.py").write_text("raise SystemExit('evil init')\n")       # not a manifest file
    (tmp_path / "sub" / "dlcv").mkdir()
    (tmp_path / "sub" / "dlcv" / "__init__.py").write_text("EVIL = True\n")  # not a manifest file
    staged = stage(a1, root, tmp_path / "sub", tmp_path / "stage")
    assert staged.present == ["a1_knn/knn.py"] and staged.missing == ["a1_knn/pytorch101.py"]
    assert (tmp_path / "stage/a1_knn/knn.py").read_text() == "X = 1\n"
    assert (tmp_path / "stage/a1_knn/__init__.py").read_text() == (root / "a1_knn/__init__.py").read_text()
    assert "EVIL" not in (tmp_path / "stage/dlcv/__init__.py").read_text()
    assert not (tmp_path / "stage/a1_knn/pytorch101.py").exists()   # the kit's copy never stands in
    assert staged.digest


@pytest.mark.parametrize("layout", ["a1_knn/{}", "top/a1_knn/{}", "{}"])
def test_zip_layouts_are_found(a1, root, tmp_path, layout):
    z = make_zip(tmp_path / "s.zip", {layout.format("knn.py"): "A = 1\n", layout.format("pytorch101.py"): "B = 2\n"})
    staged = stage(a1, root, z, tmp_path / "stage")
    assert sorted(staged.present) == sorted(a1.files)


def test_syntax_errors_are_reported_with_file_and_line(a1, root, tmp_path):
    z = make_zip(tmp_path / "s.zip", {"knn.py": "def f(:\n    pass\n", "pytorch101.py": "A = 1\n"})
    staged = stage(a1, root, z, tmp_path / "stage")
    assert "a1_knn/knn.py line 1" in staged.syntax_errors["a1_knn/knn.py"]


@pytest.mark.parametrize("name", ["../evil.py", "/abs/evil.py", "a/../../evil.py"])
def test_zip_entries_outside_the_archive_are_refused(a1, root, tmp_path, name):
    z = make_zip(tmp_path / "s.zip", {name: "x"})
    with pytest.raises(GraderError, match="outside the archive"):
        stage(a1, root, z, tmp_path / "stage")
    assert not (tmp_path / "evil.py").exists()


def test_symlinks_in_zips_are_refused(a1, root, tmp_path):
    link = zipfile.ZipInfo("knn.py")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    z = make_zip(tmp_path / "s.zip", {"knn.py": link})
    with pytest.raises(GraderError, match="symbolic link"):
        stage(a1, root, z, tmp_path / "stage")


def test_corrupt_and_wrong_inputs_name_the_file(a1, root, tmp_path):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(GraderError, match="bad.zip: not a readable zip"):
        stage(a1, root, bad, tmp_path / "stage")
    txt = tmp_path / "x.txt"
    txt.write_text("x")
    with pytest.raises(GraderError, match="expected a folder or a .zip"):
        stage(a1, root, txt, tmp_path / "stage2")
    with pytest.raises(GraderError, match="does not exist"):
        stage(a1, root, tmp_path / "nope", tmp_path / "stage3")


def test_compile_time_errors_count_as_syntax_errors(a1, root, tmp_path):
    z = make_zip(tmp_path / "s.zip", {"knn.py": "import os\nfrom __future__ import annotations\n",
                                      "pytorch101.py": "A = 1\n"})
    staged = stage(a1, root, z, tmp_path / "stage")
    assert "line 2" in staged.syntax_errors["a1_knn/knn.py"]
