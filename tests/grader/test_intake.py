"""Taking in submissions: only manifest files, safe unzip, flexible layouts, clear errors."""

import dataclasses
import stat
import zipfile

import pytest

from grader.course import intake, manifest
from grader.course.intake import SubmissionError, stage
from grader.errors import GraderError


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
    (sub / "__init__.py").write_text("raise SystemExit('evil init')\n")  # not a manifest file
    (tmp_path / "sub" / "dlcv").mkdir()
    (tmp_path / "sub" / "dlcv" / "__init__.py").write_text("EVIL = True\n")  # not a manifest file
    staged = stage(a1, root, tmp_path / "sub", tmp_path / "stage")
    assert staged.present == ["a1_knn/knn.py"] and staged.missing == ["a1_knn/pytorch101.py"]
    assert (tmp_path / "stage/a1_knn/knn.py").read_text() == "X = 1\n"
    assert (tmp_path / "stage/a1_knn/__init__.py").read_text() == (root / "a1_knn/__init__.py").read_text()
    assert "EVIL" not in (tmp_path / "stage/dlcv/__init__.py").read_text()
    assert not (tmp_path / "stage/a1_knn/pytorch101.py").exists()  # the kit's copy never stands in
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
    with pytest.raises(SubmissionError, match="outside the archive"):
        intake.safe_extract(z, tmp_path / "out")
    assert "outside the archive" in stage(a1, root, z, tmp_path / "stage").refused
    assert not (tmp_path / "evil.py").exists() and not (tmp_path.parent / "evil.py").exists()


def test_symlinks_in_zips_are_refused(a1, root, tmp_path):
    link = zipfile.ZipInfo("knn.py")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    z = make_zip(tmp_path / "s.zip", {"knn.py": link})
    with pytest.raises(SubmissionError, match="symbolic link"):
        intake.safe_extract(z, tmp_path / "out")
    assert "entry 'knn.py' is a symbolic link" in stage(a1, root, z, tmp_path / "stage").refused


def test_corrupt_and_wrong_inputs_name_the_file(a1, root, tmp_path):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip")
    assert "bad.zip: not a readable zip" in stage(a1, root, bad, tmp_path / "stage").refused
    txt = tmp_path / "x.txt"
    txt.write_text("x")
    with pytest.raises(GraderError, match="expected a folder or a .zip"):
        stage(a1, root, txt, tmp_path / "stage2")
    with pytest.raises(GraderError, match="does not exist"):
        stage(a1, root, tmp_path / "nope", tmp_path / "stage3")


def test_compile_time_errors_count_as_syntax_errors(a1, root, tmp_path):
    z = make_zip(
        tmp_path / "s.zip", {"knn.py": "import os\nfrom __future__ import annotations\n", "pytorch101.py": "A = 1\n"}
    )
    staged = stage(a1, root, z, tmp_path / "stage")
    assert "line 2" in staged.syntax_errors["a1_knn/knn.py"]


# -- hostile archives: a clear message naming the archive and the entry, never a crash -----------------------


def _patch(path, old: bytes, new: bytes, count: int = -1):
    data = path.read_bytes()
    assert old in data
    path.write_bytes(data.replace(old, new, count))
    return path


def _zip_file_and_folder(tmp_path):
    return make_zip(tmp_path / "s.zip", {"a1_knn/knn.py": "A = 1\n", "a1_knn/knn.py/x.py": "B = 2\n"})


def _zip_folder_then_file(tmp_path):
    return make_zip(tmp_path / "s.zip", {"a1_knn/knn.py/": "", "a1_knn/knn.py": "A = 1\n"})


def _zip_twice(tmp_path):
    z = make_zip(tmp_path / "s.zip", {"a1_knn/knn.py": "A = 1\n"})
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(z, "a") as zf:
        zf.writestr("a1_knn/knn.py", "A = 2\n")
    return z


def _zip_dot(tmp_path):
    return make_zip(tmp_path / "s.zip", {".": "x", "a1_knn/knn.py": "A = 1\n"})


def _zip_bomb_ratio(tmp_path):
    path = tmp_path / "s.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a1_knn/knn.py", "A = 1\n")
        zf.writestr("zeros.bin", b"\0" * (4 * 2**20))  # 4 MiB from a few KiB
    return path


def _zip_bomb_total(tmp_path, monkeypatch):
    monkeypatch.setattr(intake, "MAX_BYTES", 5000)
    return make_zip(tmp_path / "s.zip", {f"f{i}.txt": "x" * 2000 for i in range(3)})


def _zip_bad_name(tmp_path):
    z = make_zip(tmp_path / "s.zip", {"a1_knn/kn\u00e9.py": "A = 1\n"})  # stored with the UTF-8 flag
    return _patch(z, "kn\u00e9".encode(), b"kn\xff\xfe")  # no longer UTF-8


def _zip_control_name(tmp_path):
    return make_zip(tmp_path / "s.zip", {"a1_knn/knn\x1b[2J.py": "A = 1\n"})


def _zip_bad_crc(tmp_path):
    z = make_zip(tmp_path / "s.zip", {"a1_knn/knn.py": "A = 1 # the submitted text\n"})
    return _patch(z, b"the submitted text", b"the submitted TEXT")


def _zip_unknown_method(tmp_path):
    z = make_zip(tmp_path / "s.zip", {"a1_knn/knn.py": "A = 1\n"})
    data = bytearray(z.read_bytes())
    local, central = data.find(b"PK\x03\x04"), data.find(b"PK\x01\x02")
    data[local + 8 : local + 10] = (99).to_bytes(2, "little")  # compression method 99
    data[central + 10 : central + 12] = (99).to_bytes(2, "little")
    z.write_bytes(bytes(data))
    return z


def _zip_truncated(tmp_path):
    z = make_zip(tmp_path / "s.zip", {"a1_knn/knn.py": "A = 1\n" * 100})
    z.write_bytes(z.read_bytes()[:-30])
    return z


HOSTILE_ZIPS = {
    "file_and_folder": (_zip_file_and_folder, "both a file and a folder"),
    "folder_then_file": (_zip_folder_then_file, "both a file and a folder"),
    "same_name_twice": (_zip_twice, "appears twice"),
    "dot_entry": (_zip_dot, "entry '.'"),
    "bomb_ratio": (_zip_bomb_ratio, "compressed"),
    "bomb_total": (_zip_bomb_total, "unpacks to more than"),
    "undecodable_name": (_zip_bad_name, "not valid UTF-8"),
    "control_character_in_name": (_zip_control_name, "control character"),
    "bad_crc": (_zip_bad_crc, "could not be unpacked"),
    "unknown_compression": (_zip_unknown_method, "could not be unpacked"),
    "truncated": (_zip_truncated, "not a readable zip archive"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_ZIPS))
def test_hostile_archives_are_refused_with_a_clear_message(a1, root, tmp_path, monkeypatch, case):
    build, words = HOSTILE_ZIPS[case]
    z = build(tmp_path, monkeypatch) if case == "bomb_total" else build(tmp_path)
    with pytest.raises(SubmissionError) as info:
        intake.safe_extract(z, tmp_path / "out")
    message = str(info.value)
    assert "s.zip" in message and words in message
    assert "\x1b" not in message
    # staging never raises for a bad archive: every graded file carries the reason
    staged = stage(a1, root, z, tmp_path / "stage")
    assert staged.refused == message and staged.present == []
    assert staged.rejected == dict.fromkeys(a1.files, message)
    assert (tmp_path / "stage/a1_knn/__init__.py").is_file()  # the kit is staged as usual
    assert not (tmp_path / "stage/a1_knn/knn.py").exists()


def test_archive_folders_written_dot_slash_are_read(a1, root, tmp_path):
    z = make_zip(tmp_path / "s.zip", {"./": "", "./a1_knn/knn.py": "A = 1\n", "./a1_knn/pytorch101.py": "B = 2\n"})
    staged = stage(a1, root, z, tmp_path / "stage")
    assert sorted(staged.present) == sorted(a1.files) and not staged.rejected


# -- folder submissions: links are never followed -------------------------------------------------------------


def test_a_linked_file_counts_as_missing(a1, root, tmp_path):
    sub = tmp_path / "sub" / "a1_knn"
    sub.mkdir(parents=True)
    (sub / "pytorch101.py").write_text("A = 1\n")
    (sub / "knn.py").symlink_to(root / "a1_knn/knn.py")  # the instructor's reference
    staged = stage(a1, root, tmp_path / "sub", tmp_path / "stage")
    assert staged.present == ["a1_knn/pytorch101.py"]
    assert staged.rejected == {
        "a1_knn/knn.py": "a1_knn/knn.py is a symbolic link; links are not followed, so the file counts as missing."
    }
    assert "a1_knn/knn.py" not in staged.sources and not (tmp_path / "stage/a1_knn/knn.py").exists()


@pytest.mark.parametrize("layout", ["folder", "top", "flat"])
def test_a_linked_folder_is_not_followed(a1, root, tmp_path, layout):
    sub = tmp_path / "sub"
    sub.mkdir()
    if layout == "folder":
        (sub / "a1_knn").symlink_to(root / "a1_knn")
    elif layout == "top":
        (sub / "mine").symlink_to(root)
    else:
        (sub / "src").mkdir()
        (sub / "src" / "knn.py").symlink_to(root / "a1_knn/knn.py")
        (sub / "src" / "pytorch101.py").symlink_to(root / "a1_knn/pytorch101.py")
    staged = stage(a1, root, sub, tmp_path / "stage")
    assert staged.present == [] and sorted(staged.rejected) == sorted(a1.files)
    where = {
        "folder": "lies under a1_knn/, a symbolic link",
        "top": "lies under mine/, a symbolic link",
        "flat": "(found as src/knn.py) is a symbolic link",
    }[layout]
    assert where in staged.rejected["a1_knn/knn.py"]
    assert all("links are not followed, so the file counts as missing." in m for m in staged.rejected.values())
    assert staged.sources == {}


def test_the_folder_walk_skips_git_and_venv(a1, root, tmp_path):
    sub = tmp_path / "sub"
    for d in (".git/objects", ".venv/lib", "src"):
        (sub / d).mkdir(parents=True)
    (sub / ".git/objects/knn.py").write_text("OLD = 1\n")
    (sub / ".venv/lib/knn.py").write_text("OTHER = 1\n")
    (sub / "src/knn.py").write_text("MINE = 1\n")
    staged = stage(a1, root, sub, tmp_path / "stage")
    assert staged.present == ["a1_knn/knn.py"] and staged.sources["a1_knn/knn.py"] == "MINE = 1\n"


# -- hostile sources: a clear message for the file, never a crash ---------------------------------------------


def _submit(tmp_path, knn: bytes, pytorch101: bytes = b"A = 1\n"):
    sub = tmp_path / "sub" / "a1_knn"
    sub.mkdir(parents=True)
    (sub / "knn.py").write_bytes(knn)
    (sub / "pytorch101.py").write_bytes(pytorch101)
    return tmp_path / "sub"


def test_the_manifest_sets_the_source_size_limit(a1):
    assert a1.max_source_bytes == 2**20


def test_a_source_over_the_size_limit_fails_only_that_file(a1, root, tmp_path):
    m = dataclasses.replace(a1, max_source_bytes=1000)
    staged = stage(m, root, _submit(tmp_path, b"X = '" + b"a" * 2000 + b"'\n"), tmp_path / "stage")
    assert staged.present == ["a1_knn/pytorch101.py"]
    assert staged.rejected["a1_knn/knn.py"] == (
        "a1_knn/knn.py is 2,007 bytes; a graded file may hold at most "
        "1,000 bytes (max_source_bytes), so it was not graded."
    )


@pytest.mark.parametrize(
    "source",
    ["x = " + "+".join(["1"] * 100_000), "x = " + "-" * 100_000 + "1", "x = f" + "()" * 100_000],
    ids=["sum", "unary", "calls"],
)
def test_a_deeply_nested_source_counts_as_unparseable(a1, root, tmp_path, source):
    staged = stage(a1, root, _submit(tmp_path, source.encode()), tmp_path / "stage")
    assert "too deeply nested" in staged.syntax_errors["a1_knn/knn.py"]
    assert "a1_knn/pytorch101.py" not in staged.syntax_errors


def test_undecodable_bytes_name_the_byte(a1, root, tmp_path):
    staged = stage(a1, root, _submit(tmp_path, b"A = 1\n# caf\xe9\n"), tmp_path / "stage")
    assert staged.rejected["a1_knn/knn.py"] == (
        "a1_knn/knn.py is not valid UTF-8 at byte 11 (line 2, byte 0xe9), so it was not graded. Save it as UTF-8."
    )
    assert "a1_knn/knn.py" not in staged.present


def test_a_utf8_byte_order_mark_is_fine(a1, root, tmp_path):
    staged = stage(a1, root, _submit(tmp_path, b"\xef\xbb\xbfA = 1\n"), tmp_path / "stage")
    assert not staged.syntax_errors and not staged.rejected and staged.sources["a1_knn/knn.py"] == "A = 1\n"


def test_a_source_with_too_many_syntax_nodes_is_not_graded(a1, root, tmp_path):
    data = b"BIG = [" + b"1," * 60_000 + b"]\n"  # 120 KB: under the size limit
    staged = stage(a1, root, _submit(tmp_path, data), tmp_path / "stage")
    assert "more than 50,000 syntax nodes" in staged.rejected["a1_knn/knn.py"]
    assert staged.present == ["a1_knn/pytorch101.py"]


@pytest.mark.parametrize("name", manifest.available(manifest.course_root()))
def test_the_reference_files_are_taken_whole(root, tmp_path, name):
    m = manifest.load(name, root)
    staged = stage(m, root, root, tmp_path / "stage")
    assert sorted(staged.present) == sorted(m.files)
    assert not staged.rejected and not staged.syntax_errors and not staged.missing and not staged.refused


@pytest.mark.parametrize("value", ["0", "-5", '"1 MiB"', "1.5"])
def test_a_bad_size_limit_names_the_manifest_and_the_key(tmp_path, value):
    from tests.grader.test_manifest import GOOD, write

    root = write(tmp_path, GOOD + f"\n[limits]\nmax_source_bytes = {value}\n")
    with pytest.raises(GraderError, match=r"assignment.toml \[limits\]: 'max_source_bytes' should be a positive"):
        manifest.load("demo", root)
