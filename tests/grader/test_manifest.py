import textwrap

import pytest

from grader import manifest
from grader.manifest import GraderError

GOOD = '''
name = "demo"
files = ["demo/a.py"]
[[parts]]
name = "p"
module = "demo.a"
file = "demo/a.py"
points = 10
[parts.functions]
f = 4
g = 6
[parts.forbidden]
f = ["torch.cdist"]
'''


def write(tmp_path, text):
    d = tmp_path / "assignments" / "demo"
    d.mkdir(parents=True, exist_ok=True)
    (d / "assignment.toml").write_text(textwrap.dedent(text))
    return tmp_path


def test_a_good_manifest_loads(tmp_path):
    m = manifest.load("demo", write(tmp_path, GOOD))
    assert m.points == 10 and m.part_of("g").name == "p"
    assert m.forbidden_for("f") == ["torch.cdist"] and m.sandbox_paths == ["demo", "dlcv"]


@pytest.mark.parametrize("change, message", [
    (("g = 6", "g = 5"), "add up to 9, expected the part's 10"),
    (('f = ["torch.cdist"]', 'h = ["torch.cdist"]'), "not graded"),
    (('module = "demo.a"\n', ""), "missing key 'module'"),
    (("points = 10", 'points = "ten"'), "'points' should be a float"),
    (('files = ["demo/a.py"]', 'files = ["demo/b.py"]'), "does not take from a submission"),
    (("[[parts]]", "[[parts]"), "not valid TOML"),
])
def test_bad_manifests_name_the_file_and_the_problem(tmp_path, change, message):
    root = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(GraderError, match="assignment.toml") as info:
        manifest.load("demo", root)
    assert message in str(info.value)


def test_an_unknown_assignment_lists_the_known_ones(tmp_path):
    root = write(tmp_path, GOOD)
    with pytest.raises(GraderError, match="unknown assignment 'a9'.*demo"):
        manifest.load("a9", root)


def test_the_repo_manifests_load(root):
    for name in manifest.available(root):
        m = manifest.load(name, root)
        assert m.points == 100
