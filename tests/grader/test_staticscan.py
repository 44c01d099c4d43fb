import pytest

from grader.staticscan import loops, scan

SRC = '''
import torch
import torch.nn.functional as F
from torch import cdist as cd
from torch.linalg import norm

def uses_all(a, b):
    d = torch.cdist(a, b)
    e = cd(a, b)
    f = a.norm(dim=1)
    g = F.pad(a, (1, 1))
    h = norm(a)
    return d

def clean(a, b):
    normed = a.sum()       # a variable named like a forbidden method is fine
    return (a * a).sum(1)[:, None] + (b * b).sum(1)[None] - 2 * a @ b.t()

class Model:
    def predict(self, x):
        return torch.cdist(x, x)

def looped(x):
    for i in range(3):
        while False:
            pass
    return [v for v in x]
'''

FORBIDDEN = ["torch.cdist", "torch.nn", "torch.linalg", "torch.Tensor.norm"]


def test_each_forbidden_use_is_found_with_its_line_through_aliases():
    uses = scan(SRC, "uses_all", FORBIDDEN)
    got = {(u.name, u.text) for u in uses}
    assert ("torch.cdist", "torch.cdist") in got
    assert ("torch.cdist", "cd") in got
    assert ("torch.Tensor.norm", "a.norm") in got
    assert ("torch.nn", "F.pad") in got
    assert ("torch.linalg", "norm") in got
    assert all(u.line > 0 for u in uses)


def test_clean_code_and_other_functions_are_not_flagged():
    assert scan(SRC, "clean", FORBIDDEN) == []
    assert scan(SRC, "not_there", FORBIDDEN) == []


def test_methods_are_scanned_by_qualified_name():
    assert [u.name for u in scan(SRC, "Model.predict", FORBIDDEN)] == ["torch.cdist"]
    assert [u.name for u in scan(SRC, "Model", FORBIDDEN)] == ["torch.cdist"]


def test_loops_counts_for_while_and_comprehensions():
    assert len(loops(SRC, "looped")) == 3
    assert loops(SRC, "clean") == []


def test_autograd_use_is_found_in_every_spelling():
    from grader.manifest import AUTOGRAD_NAMES
    src = (
        "import torch\n"
        "from torch.autograd import grad\n"
        "def f(w, x):\n"
        "    a = torch.zeros(3, requires_grad=True)\n"
        "    w.requires_grad_()\n"
        "    x.requires_grad = True\n"
        "    (w * x).sum().backward()\n"
        "    return grad(w.sum(), w), torch.autograd.grad\n"
        "def g(w):\n"
        "    return 2 * w\n")
    found = {(u.name, u.line) for u in scan(src, "f", AUTOGRAD_NAMES)}
    assert {("torch.Tensor.requires_grad", 4), ("torch.Tensor.requires_grad_", 5),
            ("torch.Tensor.requires_grad", 6), ("torch.Tensor.backward", 7), ("torch.autograd", 8)} <= found
    assert scan(src, "g", AUTOGRAD_NAMES) == []


def test_a_layer_backward_is_not_tensor_backward():
    from grader.manifest import AUTOGRAD_NAMES
    src = (
        "import torch\n"
        "from layers import Conv\n"
        "class Linear:\n"
        "    @staticmethod\n"
        "    def backward(dout, cache):\n"
        "        return dout\n"
        "def net_backward(dout, cache, scores):\n"
        "    dx = Linear.backward(dout, cache)\n"
        "    dy = Conv.backward(dout, cache)\n"
        "    scores.sum().backward()\n"
        "    for layer in (Linear, Conv):\n"
        "        dz = layer.backward(dout, cache)\n"
        "    return dx, dy\n")
    assert [(u.name, u.line) for u in scan(src, "net_backward", AUTOGRAD_NAMES)] == [("torch.Tensor.backward", 10)]


def test_syntax_errors_surface():
    with pytest.raises(SyntaxError):
        scan("def f(:\n", "f", FORBIDDEN)


def test_the_definition_python_keeps_is_the_one_scanned():
    src = "import torch\ndef f(a, b):\n    return a\ndef f(a, b):\n    return torch.cdist(a, b)\n"
    assert [u.line for u in scan(src, "f", ["torch.cdist"])] == [5]
