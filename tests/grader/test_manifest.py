import textwrap

import pytest

from grader.course import manifest
from grader.errors import GraderError

GOOD = """
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
[why]
"torch.cdist" = "it computes the distances you are asked to compute"
"""


def write(tmp_path, text):
    d = tmp_path / "assignments" / "demo"
    d.mkdir(parents=True, exist_ok=True)
    (d / "assignment.toml").write_text(textwrap.dedent(text))
    return tmp_path


def test_a_good_manifest_loads(tmp_path):
    m = manifest.load("demo", write(tmp_path, GOOD))
    assert m.points == 10 and m.part_of("g").name == "p"
    assert m.forbidden_for("f") == ["torch.cdist"] and m.sandbox_paths == ["demo", "dlcv"]
    assert m.why == {"torch.cdist": "it computes the distances you are asked to compute"}
    assert m.blocks_of("f") == [] and m.questions == [] and not hasattr(m, "extra")


@pytest.mark.parametrize(
    "change, message",
    [
        (("g = 6", "g = 5"), "add up to 9, expected the part's 10"),
        (('f = ["torch.cdist"]', 'h = ["torch.cdist"]'), "'h' is not a function this part grades"),
        (('module = "demo.a"\n', ""), "missing key 'module'"),
        (("points = 10", 'points = "ten"'), "'points' should be a float"),
        (('files = ["demo/a.py"]', 'files = ["demo/b.py"]'), "does not take from a submission"),
        (("[[parts]]", "[[parts]"), "not valid TOML"),
    ],
)
def test_bad_manifests_name_the_file_and_the_problem(tmp_path, change, message):
    root = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(GraderError, match=r"assignment\.toml") as info:
        manifest.load("demo", root)
    assert message in str(info.value)


def test_an_unknown_assignment_lists_the_known_ones(tmp_path):
    root = write(tmp_path, GOOD)
    with pytest.raises(GraderError, match=r"unknown assignment 'a9'.*demo"):
        manifest.load("a9", root)


def test_the_repo_manifests_load(root):
    for name in manifest.available(root):
        m = manifest.load(name, root)
        assert m.points == 100
        forbidden = {n for p in m.parts for names in p.forbidden.values() for n in names}
        assert set(m.why) == forbidden  # every forbidden name has a reason, and only those


# -- strict: a typo anywhere is an error naming the file, the key and the nearest valid key --------------------

WHERE = "assignments/demo/assignment.toml"


@pytest.mark.parametrize(
    "change, message",
    [
        (
            ('name = "demo"', 'name = "demo"\nforbid_autgrad = true'),
            f"{WHERE}: unknown key 'forbid_autgrad' (did you mean 'forbid_autograd'?)",
        ),
        (
            ('name = "demo"', 'name = "demo"\n[limits]\ncall_timout = 5'),
            f"{WHERE} [limits]: unknown key 'call_timout' (did you mean 'call_timeout'?)",
        ),
        (
            ("[parts.forbidden]", "[parts.forbiden]"),
            f"{WHERE} [[parts]] #1: unknown key 'forbiden' (did you mean 'forbidden'?)",
        ),
        (
            ('f = ["torch.cdist"]', 'ff = ["torch.cdist"]'),
            f"{WHERE} [[parts]] #1 [parts.forbidden]: 'ff' is not a function this part grades (did you mean 'f'?)",
        ),
        (
            ("[why]", "[parts.max_loops]\nG = 0\n[why]"),
            f"{WHERE} [[parts]] #1 [parts.max_loops]: 'G' is not a function this part grades (did you mean 'g'?)",
        ),
        (
            ("[why]", '[parts.blocks]\ng = ["ff"]\n[why]'),
            f"{WHERE} [[parts]] #1 [parts.blocks]: 'g' lists 'ff', which no part grades (a building block is a "
            "graded function or class) (did you mean 'f'?)",
        ),
        (
            ("[why]", '[parts.blocks]\ngg = ["f"]\n[why]'),
            f"{WHERE} [[parts]] #1 [parts.blocks]: 'gg' is not a function this part grades (did you mean 'g'?)",
        ),
        (
            ("[why]", '[targets.digits]\nacc = "high"\n[why]'),
            f"{WHERE} [targets.digits]: 'acc' should be a float, found str 'high'",
        ),
        (
            ("[why]", "[targets.cifar]\nacc = 50\n[why]"),
            f"{WHERE} [targets]: unknown data set 'cifar' (did you mean 'cifar10'?)",
        ),
        (("g = 6", 'g = "six"'), f"{WHERE} [[parts]] #1 [parts.functions]: 'g' should be a float, found str 'six'"),
        (
            ('"torch.cdist" = "it', '"torch.cdst" = "it'),
            f"{WHERE} [why]: 'torch.cdst' is not forbidden anywhere ([parts.forbidden]) (did you mean 'torch.cdist'?)",
        ),
        (
            ('"torch.cdist" = "it computes the distances you are asked to compute"', ""),
            f"{WHERE} [why]: no reason given for forbidding 'torch.cdist'",
        ),
        (
            ('"torch.cdist" = "it computes the distances you are asked to compute"', '"torch.cdist" = ""'),
            f"{WHERE} [why]: the reason for 'torch.cdist' should be a sentence",
        ),
        (
            ('f = ["torch.cdist"]', 'f = ["torch.cdst"]'),
            f"{WHERE} [[parts]] #1 [parts.forbidden] 'f': 'torch.cdst' names nothing in PyTorch: torch has no 'cdst' "
            "(did you mean 'torch.cdist'?)",
        ),
        (
            ('f = ["torch.cdist"]', 'f = ["torch.nn.functinal.relu"]'),
            f"{WHERE} [[parts]] #1 [parts.forbidden] 'f': 'torch.nn.functinal.relu' names nothing in PyTorch: "
            "torch.nn has no 'functinal' (did you mean 'torch.nn.functional'?)",
        ),
        (
            ('f = ["torch.cdist"]', 'f = ["numpy.linalg.norm"]'),
            f"{WHERE} [[parts]] #1 [parts.forbidden] 'f': 'numpy.linalg.norm' is not a PyTorch name (forbidden names "
            "start with 'torch.')",
        ),
        (
            ('f = ["torch.cdist"]', 'f = "torch.cdist"'),
            f"{WHERE} [[parts]] #1 [parts.forbidden]: 'f' should be a list of strings",
        ),
        (
            ("[why]", "[parts.max_loops]\nf = -1\n[why]"),
            f"{WHERE} [[parts]] #1 [parts.max_loops]: 'f' should be a whole number of loops",
        ),
        (
            ('name = "demo"', 'name = "demo"\nforbid_autograd = "yes"'),
            f"{WHERE}: 'forbid_autograd' should be true or false",
        ),
        (('name = "demo"', 'name = "demo"\nquestions = [1]'), f"{WHERE}: 'questions' should be a list of tables"),
        (('name = "demo"', 'name = "demo"\nzzz = 1'), f"{WHERE}: unknown key 'zzz' (expected one of: name, title,"),
    ],
)
def test_a_typo_or_a_wrong_value_anywhere_is_named(tmp_path, change, message):
    assert change[0] in GOOD
    with pytest.raises(GraderError) as info:
        manifest.load("demo", write(tmp_path, GOOD.replace(*change, 1)))
    assert message in str(info.value)


def test_a_function_listed_under_another_part_is_pointed_there(tmp_path):
    text = GOOD.replace(
        "[why]",
        """
[[parts]]
name = "q"
module = "demo.b"
file = "demo/a.py"
points = 1
[parts.functions]
h = 1
[parts.forbidden]
f = ["torch.cdist"]
[why]""",
    )
    with pytest.raises(GraderError, match="'f' is graded in part 'p'; list it under that part"):
        manifest.load("demo", write(tmp_path, text))


BLOCKS = GOOD.replace(
    "[why]",
    """
[parts.blocks]
g = ["f"]
[[parts]]
name = "q"
module = "demo.b"
file = "demo/a.py"
points = 2
[parts.functions]
h = 1
k = 1
[parts.blocks]
h = ["g", "f"]
[why]""",
)


def test_building_blocks_may_come_from_any_part(tmp_path):
    m = manifest.load("demo", write(tmp_path, BLOCKS))
    assert m.blocks_of("g") == ["f"] and m.blocks_of("h") == ["g", "f"] and m.blocks_of("f") == []
    assert m.part_of("g").blocks == {"g": ["f"]}


@pytest.mark.parametrize(
    "change, message",
    [
        (('h = ["g", "f"]', 'h = ["h"]'), "'h' lists itself as its own building block"),
        (('g = ["f"]', 'g = ["h"]'), "building blocks form a cycle: g -> h -> g"),
    ],
)
def test_building_blocks_do_not_loop(tmp_path, change, message):
    with pytest.raises(GraderError, match=message):
        manifest.load("demo", write(tmp_path, BLOCKS.replace(*change)))


def test_questions_are_validated_when_the_manifest_loads(tmp_path):
    with_nb = GOOD.replace('files = ["demo/a.py"]', 'files = ["demo/a.py"]\nnotebooks = ["notebooks/knn.ipynb"]')
    question = '[[questions]]\nnotebook = "notebooks/knn.ipynb"\nid = "q1"\npoints = 2\n'
    m = manifest.load("demo", write(tmp_path, with_nb + question))
    assert m.questions == [manifest.Question("q1", "notebooks/knn.ipynb", 2.0, "question:q1", "")]
    with pytest.raises(GraderError, match=r"\[\[questions\]\] #1 \(q1\): 'notebook' should be one of"):
        manifest.load("demo", write(tmp_path, GOOD + question))  # no such notebook in the manifest
    with pytest.raises(GraderError, match=r"\[\[questions\]\] #2: id 'q1' is used twice"):
        manifest.load("demo", write(tmp_path, with_nb + question + question))


@pytest.mark.parametrize("value", ["0", "1.5", '"half"', "true", "-0.25"])
def test_a_notebook_training_scale_outside_0_to_1_is_refused(tmp_path, value):
    root = write(tmp_path, GOOD + f"[limits]\nnotebook_training_scale = {value}\n")
    with pytest.raises(GraderError, match=r"\[limits\]: 'notebook_training_scale' should be a number above 0"):
        manifest.load("demo", root)


def test_the_notebook_limits_are_read_once_with_the_manifest(tmp_path):
    from grader.notebooks.execute import limits

    root = write(tmp_path, GOOD + "[limits]\nnotebook_training_scale = 0.5\nnotebook_cell_timeout = 7\n")
    lim = limits(manifest.load("demo", root))
    assert (lim.training_scale, lim.cell_timeout, lim.notebook_timeout) == (0.5, 7.0, 1800.0)
    assert limits(manifest.load("demo", write(tmp_path, GOOD))).training_scale == 1.0
