"""Grading A2 end to end: the reference scores full marks, classic bugs cost exactly their function's points, and
correct code in the course's own conventions keeps its points.

Each bug is put into a copy of the reference and graded on its part only. Composite functions (the trainers, the
searches, nn_forward_backward on top of nn_forward_pass) build on the student's blocks; when a block is broken the
grader judges the composite again with the course's block (assignments/a2_linear/oracles.py), so a bug in a loss
must not cost the trainer's points, and a composite that fails on its own still loses its own.
"""

import pytest
import torch

from grader.course import manifest
from grader.judge.runner import grade
from tests.conftest import ROOT, copy_submission, course_allowing, replace_function
from tests.grader.spy import SandboxSpy

pytestmark = pytest.mark.assignment("a2_linear")  # make test-assignment A=a2_linear

A2 = manifest.load("a2_linear", ROOT)
POINTS = {f: pts for p in A2.parts for f, pts in p.functions.items()}


def failed(result):
    return {c.function for c in result.checks if not c.passed}


def feedback(result):
    return "\n".join(c.output for c in result.checks if not c.passed)


def test_the_reference_scores_full_marks(monkeypatch):
    spy = SandboxSpy(monkeypatch)
    result = grade(ROOT, "a2_linear", device="cpu")
    assert [c.output for c in result.checks if not c.passed] == []
    assert result.score == pytest.approx(100) and result.max_score == pytest.approx(100)
    assert not any(c.hidden for c in result.checks)
    assert result.dataset == "digits"  # the data set is recorded (no CIFAR-10 here)
    notes = "\n".join(c.output for c in result.checks)
    assert "fast enough" in notes and "test split" in notes  # measured timings and accuracies are reported
    assert_the_test_split_stays_with_the_judge(spy)


def assert_the_test_split_stays_with_the_judge(spy):
    """No request into the sandbox holds a test label (nor a run of them) or a test input: A2's accuracies are
    all computed by the judge from weights it reads back, so the test inputs never need to cross either."""
    from types import SimpleNamespace

    from dlcv.data import load_dataset
    from grader.judge.judging import course_data

    data = load_dataset(None)
    ctx = SimpleNamespace(dataset=lambda: data, cache=lambda key, factory: factory())
    assert spy.requests > 40 and spy.sent  # the spy saw the run
    assert spy.label_leaks(data[3]) == []
    assert spy.label_leaks(data[1]) != []  # it would see labels: the training labels do cross
    for bias_trick in (True, False):  # as train_accuracy and find_best_net see them
        d = course_data(ctx, bias_trick=bias_trick)
        known = torch.cat([d["X_train"], d["X_val"]])
        assert spy.row_leaks(d["X_test"], known=known) == [], bias_trick
        assert spy.row_leaks(d["X_train"]) != []  # the spy would see rows (training rows do cross)


@pytest.mark.slow
def test_the_reference_scores_full_marks_with_the_hidden_checks(monkeypatch):
    spy = SandboxSpy(monkeypatch)
    result = grade(ROOT, "a2_linear", device="cpu", hidden=True)
    assert [c.output for c in result.checks if not c.passed] == []
    assert result.score == pytest.approx(100) and result.max_score == pytest.approx(100)
    assert any(c.hidden for c in result.checks)
    assert {c.function for c in result.checks if c.hidden} >= {
        "svm_loss_naive",
        "svm_loss_vectorized",
        "softmax_loss_naive",
        "softmax_loss_vectorized",
        "sample_batch",
        "train_linear_classifier",
        "predict_linear_classifier",
        "test_one_param_set",
        "nn_forward_pass",
        "nn_forward_backward",
        "nn_train",
        "nn_predict",
        "find_best_net",
    }
    assert_the_test_split_stays_with_the_judge(spy)


SVM_NO_REG_GRADIENT = """
def svm_loss_vectorized(W, X, y, reg):
    N = X.shape[0]
    idx = torch.arange(N, device=X.device)
    s = X @ W
    m = (s - s[idx, y][:, None] + 1).clamp(min=0)
    m[idx, y] = 0
    loss = m.sum() / N + reg * torch.sum(W * W)
    g = (m > 0).to(X.dtype)
    g[idx, y] = -g.sum(dim=1)
    dW = X.t() @ g / N                       # the regulariser's 2 * reg * W is missing
    return loss, dW
"""

SVM_CORRECT_CLASS_COUNTED = """
def svm_loss_naive(W, X, y, reg):
    N, C = X.shape[0], W.shape[1]
    loss = torch.zeros((), dtype=W.dtype, device=W.device)
    dW = torch.zeros_like(W)
    for i in range(N):
        s = X[i] @ W
        for j in range(C):                   # j == y[i] is not skipped
            m = s[j] - s[y[i]] + 1
            if m > 0:
                loss = loss + m
                dW[:, j] += X[i]
                dW[:, y[i]] -= X[i]
    return loss / N + reg * torch.sum(W * W), dW / N + 2 * reg * W
"""

SOFTMAX_NOT_DIVIDED_BY_N = """
def softmax_loss_vectorized(W, X, y, reg):
    N = X.shape[0]
    idx = torch.arange(N, device=X.device)
    s = X @ W
    s = s - s.max(dim=1, keepdim=True).values
    lse = torch.log(torch.exp(s).sum(dim=1))
    loss = (lse - s[idx, y]).mean() + reg * torch.sum(W * W)
    p = torch.exp(s - lse[:, None])
    p[idx, y] -= 1
    dW = X.t() @ p + 2 * reg * W             # not divided by N
    return loss, dW
"""

SOFTMAX_UNSTABLE = """
def softmax_loss_naive(W, X, y, reg):
    N, C = X.shape[0], W.shape[1]
    loss = torch.zeros((), dtype=W.dtype, device=W.device)
    dW = torch.zeros_like(W)
    for i in range(N):
        e = torch.exp(X[i] @ W)              # no shift by the row maximum: overflows on large scores
        p = e / e.sum()
        loss = loss - torch.log(p[y[i]])
        for j in range(C):
            dW[:, j] += p[j] * X[i]
        dW[:, y[i]] -= X[i]
    return loss / N + reg * torch.sum(W * W), dW / N + 2 * reg * W
"""

SOFTMAX_BACKWARD = """
def softmax_loss_vectorized(W, X, y, reg):
    N = X.shape[0]
    Wg = W.detach().clone().requires_grad_(True)
    s = X @ Wg
    s = s - s.max(dim=1, keepdim=True).values
    loss = (torch.log(torch.exp(s).sum(dim=1)) - s[torch.arange(N), y]).mean() + reg * torch.sum(Wg * Wg)
    loss.backward()
    return loss.detach(), Wg.grad
"""

SOFTMAX_AUTOGRAD_HIDDEN = """
def softmax_loss_vectorized(W, X, y, reg):
    N = X.shape[0]
    Wg = W.detach().clone()
    getattr(Wg, "requires_grad_")(True)                        # invisible to the static scan
    s = X @ Wg
    s = s - s.max(dim=1, keepdim=True).values
    loss = (torch.log(torch.exp(s).sum(dim=1)) - s[torch.arange(N), y]).mean() + reg * torch.sum(Wg * Wg)
    (g,) = getattr(torch, "autograd").grad(loss, Wg)
    return loss.detach(), g
"""

NN_TRAIN_NO_DECAY = """
def nn_train(params, loss_func, pred_func, X, y, X_val, y_val, learning_rate=1e-3, learning_rate_decay=0.95,
             reg=5e-6, num_iters=100, batch_size=200, verbose=False):
    num_train = X.shape[0]
    iterations_per_epoch = max(num_train // batch_size, 1)
    loss_history, train_acc_history, val_acc_history = [], [], []
    for it in range(num_iters):
        X_batch, y_batch = sample_batch(X, y, num_train, batch_size)
        loss, grads = loss_func(params, X_batch, y=y_batch, reg=reg)
        loss_history.append(float(loss))
        for name in params:
            params[name] -= learning_rate * grads[name]
        if (it + 1) % iterations_per_epoch == 0:
            train_acc_history.append((pred_func(params, loss_func, X_batch) == y_batch).double().mean().item())
            val_acc_history.append((pred_func(params, loss_func, X_val) == y_val).double().mean().item())
            # the learning rate is never decayed
    return {"loss_history": loss_history, "train_acc_history": train_acc_history,
            "val_acc_history": val_acc_history}
"""

FORWARD_WITHOUT_B2 = """
def nn_forward_pass(params, X):
    hidden = (X @ params["W1"] + params["b1"]).clamp(min=0)
    return hidden @ params["W2"], hidden    # b2 is missing
"""

NET_BY_BACKWARD = """
def nn_forward_backward(params, X, y=None, reg=0.0):
    scores, hidden = nn_forward_pass(params, X)
    if y is None:
        return scores
    W1 = params["W1"].detach().clone().requires_grad_(True)
    b1 = params["b1"].detach().clone().requires_grad_(True)
    W2 = params["W2"].detach().clone().requires_grad_(True)
    b2 = params["b2"].detach().clone().requires_grad_(True)
    s = (X @ W1 + b1).clamp(min=0) @ W2 + b2
    s = s - s.max(dim=1, keepdim=True).values
    loss = (torch.log(torch.exp(s).sum(dim=1)) - s[torch.arange(X.shape[0]), y]).mean() \\
        + reg * ((W1 * W1).sum() + (W2 * W2).sum())
    loss.backward()
    return loss.detach(), {"W1": W1.grad, "b1": b1.grad, "W2": W2.grad, "b2": b2.grad}
"""

SVM_FLOAT64_ONLY = """
def svm_loss_vectorized(W, X, y, reg):
    N = X.shape[0]
    idx = torch.arange(N, device=X.device)
    s = X @ W
    m = (s - s[idx, y][:, None] + 1).clamp(min=0)
    m[idx, y] = 0
    loss = m.sum() / N + reg * torch.sum(W * W)
    g = torch.zeros(m.shape, dtype=torch.float64, device=X.device)    # float64 whatever X is
    g[m > 0] = 1
    g[idx, y] = -g.sum(dim=1)
    dW = X.t() @ g / N + 2 * reg * W         # RuntimeError when X is float32
    return loss, dW
"""

# bug -> (function, source, words the feedback must hold)
BREAKS = {
    "svm gradient without the regulariser": (
        "svm_loss_vectorized",
        SVM_NO_REG_GRADIENT,
        ["dW", "missing the regulariser's gradient 2 * reg * W"],
    ),
    "svm counts the correct class": (
        "svm_loss_naive",
        SVM_CORRECT_CLASS_COUNTED,
        ["the loss", "correct class's own hinge", "j != y[i]"],
    ),
    "softmax gradient not divided by N": (
        "softmax_loss_vectorized",
        SOFTMAX_NOT_DIVIDED_BY_N,
        ["dW", "not divided by N"],
    ),
    "softmax without the max shift": (
        "softmax_loss_naive",
        SOFTMAX_UNSTABLE,
        ["nan or inf", "subtract each row's largest score"],
    ),
    # the trainers train in float32 with a loss checked in float64: a loss that fails in float32 costs its own
    # points, not train_linear_classifier's or test_one_param_set's (they train with a loss that works)
    "svm loss that fails in float32": ("svm_loss_vectorized", SVM_FLOAT64_ONLY, ["RuntimeError", "float"]),
    "softmax by .backward()": (
        "softmax_loss_vectorized",
        SOFTMAX_BACKWARD,
        ["loss.backward", "requires_grad_", "may not use"],
    ),
    "softmax by autograd behind getattr": (
        "softmax_loss_vectorized",
        SOFTMAX_AUTOGRAD_HIDDEN,
        ["called torch.Tensor.requires_grad_", "torch.autograd.grad"],
    ),
    "nn_train without learning rate decay": (
        "nn_train",
        NN_TRAIN_NO_DECAY,
        ["learning rate never decays", "learning_rate_decay"],
    ),
    # the next two break a function the composites (nn_train, nn_predict, find_best_net) build on: only its own
    # points may go
    "forward pass without b2": ("nn_forward_pass", FORWARD_WITHOUT_B2, ["b2 is missing from the second layer"]),
    "two-layer gradients by autograd": (
        "nn_forward_backward",
        NET_BY_BACKWARD,
        ["requires_grad_", "loss.backward", "may not use"],
    ),
}


@pytest.mark.parametrize("bug", sorted(BREAKS))
def test_a_classic_bug_costs_exactly_its_functions_points(tmp_path, bug):
    function, source, words = BREAKS[bug]
    part = A2.part_of(function)
    sub = copy_submission(tmp_path, packages=("a2_linear",))
    replace_function(sub / part.file, function, source)
    result = grade(sub, "a2_linear", device="cpu", parts=[part.name])
    assert failed(result) == {function}, feedback(result)
    assert result.score == pytest.approx(part.points - POINTS[function])
    text = feedback(result)
    for w in words:
        assert w in text, f"{w!r} not in the feedback:\n{text}"


def test_a_vectorized_loss_that_calls_the_naive_one_loses_its_points(tmp_path):
    sub = copy_submission(tmp_path, packages=("a2_linear",))
    replace_function(
        sub / "a2_linear/linear_classifier.py",
        "softmax_loss_vectorized",
        """
        def softmax_loss_vectorized(W, X, y, reg):
            return softmax_loss_naive(W, X, y, reg)      # no loop here, but loops underneath
        """,
    )
    result = grade(sub, "a2_linear", device="cpu", parts=["linear"])
    assert failed(result) == {"softmax_loss_vectorized"}, feedback(result)
    assert result.score == pytest.approx(60 - POINTS["softmax_loss_vectorized"])
    # max_loops follows the call into the looping helper (and, were it not found there, the loop is slow)
    assert "softmax_loss_naive, which softmax_loss_vectorized calls" in feedback(result)


def a2_checks():
    """The module of A2's public checks, as the grader loads it."""
    import sys

    from grader.judge.loading import load_checks

    return sys.modules[load_checks(A2, hidden=False)[0].body.__module__]


@pytest.mark.parametrize("kind", ["svm", "softmax"])
def test_the_speed_baseline_is_the_loss_itself(kind):
    """The judge times its own vectorized loss; it must be the very loss the students write, not a cheaper one."""
    import torch

    checks = a2_checks()
    g = torch.Generator().manual_seed(3)
    W, X = (
        0.3 * torch.randn(9, 5, generator=g, dtype=torch.float64),
        torch.randn(40, 9, generator=g, dtype=torch.float64),
    )
    X[:, -1], W[-1] = 1.0, 100.0  # scores near 100: the softmax must shift by the row maximum
    y = torch.randint(0, 5, (40,), generator=g)
    loss, dW = checks.reference_loss(kind, W, X, y, 0.1)
    want_loss, want_dW, _, _ = checks.linear_expectations(kind, W, X, y, 0.1)
    assert checks.rel_error(loss, want_loss) < 1e-12 and checks.rel_error(dW, want_dW) < 1e-12


# One Python loop over the examples, written without a loop statement (max_loops = 0 counts statements), and a
# naive loss that is slow only when the judge could be timing it (many examples). The judge no longer times the
# naive loss at all: the looped loss is compared with the judge's own vectorized loss.
SLEEPY_NAIVE = """
def svm_loss_naive(W, X, y, reg):
    import time
    if X.shape[0] >= 400:
        time.sleep(3.0)                      # "naive" is slow only when it is timed
    N, C = X.shape[0], W.shape[1]
    loss = torch.zeros((), dtype=W.dtype, device=W.device)
    dW = torch.zeros_like(W)
    for i in range(N):
        s = X[i] @ W
        for j in range(C):
            if j == y[i]:
                continue
            m = s[j] - s[y[i]] + 1
            if m > 0:
                loss = loss + m
                dW[:, j] += X[i]
                dW[:, y[i]] -= X[i]
    return loss / N + reg * torch.sum(W * W), dW / N + 2 * reg * W
"""

LOOPED_VECTORIZED = """
def svm_loss_vectorized(W, X, y, reg):
    N = X.shape[0]

    def one(i):
        s = X[i] @ W
        m = (s - s[y[i]] + 1).clamp(min=0)
        m[y[i]] = 0
        g = (m > 0).to(W.dtype)
        g[y[i]] = -g.sum()
        return m.sum(), torch.outer(X[i], g)

    losses, grads = zip(*map(one, range(N)))          # a loop over the N examples all the same
    return (torch.stack(losses).sum() / N + reg * torch.sum(W * W),
            torch.stack(grads).sum(dim=0) / N + 2 * reg * W)
"""


def test_a_naive_loss_that_sleeps_when_timed_does_not_make_a_looped_loss_fast(tmp_path):
    sub = copy_submission(tmp_path, packages=("a2_linear",))
    path = sub / "a2_linear/linear_classifier.py"
    replace_function(path, "svm_loss_naive", SLEEPY_NAIVE)
    replace_function(path, "svm_loss_vectorized", LOOPED_VECTORIZED)
    course = course_allowing(tmp_path / "course", "a2_linear", ["time"])  # else the import rule refuses the file
    result = grade(sub, "a2_linear", device="cpu", parts=["linear"], kit=course)
    lost = {c.id: c.output for c in result.checks if not c.passed}
    # right everywhere, but slow, and its map() over the examples is a loop the static scan counts too
    assert set(lost) == {"a2.linear.svm_vectorized_speed", "a2.linear.svm_vectorized"}, feedback(result)
    assert "map" in lost["a2.linear.svm_vectorized"] and "map" in lost["a2.linear.svm_vectorized_speed"]
    assert "svm_loss_naive" not in lost["a2.linear.svm_vectorized_speed"]  # the naive loss plays no part
    assert result.score < 60


MEMO_VECTORIZED = """
_svm_slow = svm_loss_naive
_MEMO = {}


def svm_loss_vectorized(W, X, y, reg):
    key = (id(W), id(X), id(y), reg)        # the timed repeats used to reuse the same tensors
    if key not in _MEMO:
        _MEMO[key] = _svm_slow(W, X, y, reg)
    return _MEMO[key]
"""


def test_a_memo_of_the_naive_loss_gains_nothing_in_the_timed_runs(tmp_path, monkeypatch):
    """A memo of the naive loss, keyed on the inputs' identity, gains nothing: the static scan follows the alias to the
    naive loss's loops, and every timed call gets new inputs (its result judged), so the memo would miss each time
    anyway. Only svm_loss_vectorized's own checks run (the trainers would train with the naive loss, for minutes)."""
    from grader.judge import runner

    load_checks = runner.load_checks
    monkeypatch.setattr(
        runner, "load_checks", lambda m, h: [s for s in load_checks(m, h) if s.function == "svm_loss_vectorized"]
    )
    sub = copy_submission(tmp_path, packages=("a2_linear",))
    path = sub / "a2_linear/linear_classifier.py"
    replace_function(path, "svm_loss_vectorized", "def svm_loss_vectorized(W, X, y, reg):\n    pass\n")
    path.write_text(path.read_text().replace("def svm_loss_vectorized(W, X, y, reg):\n    pass\n", MEMO_VECTORIZED))
    result = grade(sub, "a2_linear", device="cpu", parts=["linear"])
    lost = {c.id: c.output for c in result.checks if not c.passed}
    assert set(lost) == {"a2.linear.svm_vectorized", "a2.linear.svm_vectorized_speed"}, feedback(result)
    assert all("in svm_loss_naive, which svm_loss_vectorized calls" in text for text in lost.values())


# Excuse farming: a composite that fails on its own, next to a building block broken on purpose. The grader judges a
# composite again with the course's blocks (oracles.py) in place of the broken ones, and that judgement stands: an
# exception raised in the composite's own lines, or a training that fails with correct blocks, still costs the
# composite its points, so breaking a cheap block cannot buy back a valuable composite's points.
FIRST_ROWS_SAMPLE_BATCH = """
def sample_batch(X, y, num_train, batch_size):
    return X[:batch_size], y[:batch_size]       # always the first rows: broken on purpose
"""

NN_TRAIN_RAISES_ON_THE_TOY = """
def nn_train(params, loss_func, pred_func, X, y, X_val, y_val, learning_rate=1e-3, learning_rate_decay=0.95,
             reg=5e-6, num_iters=100, batch_size=200, verbose=False):
    if X.shape[0] == 5 and num_iters >= 200:
        raise RuntimeError("nn_train gives up on the toy problem")     # its own line: never excused
    num_train = X.shape[0]
    iterations_per_epoch = max(num_train // batch_size, 1)
    loss_history, train_acc_history, val_acc_history = [], [], []
    for it in range(num_iters):
        X_batch, y_batch = sample_batch(X, y, num_train, batch_size)
        loss, grads = loss_func(params, X_batch, y=y_batch, reg=reg)
        loss_history.append(float(loss))
        for name in params:
            params[name] -= learning_rate * grads[name]
        if (it + 1) % iterations_per_epoch == 0:
            train_acc_history.append((pred_func(params, loss_func, X_batch) == y_batch).double().mean().item())
            val_acc_history.append((pred_func(params, loss_func, X_val) == y_val).double().mean().item())
            learning_rate *= learning_rate_decay
    return {"loss_history": loss_history, "train_acc_history": train_acc_history,
            "val_acc_history": val_acc_history}
"""

PREDICT_RAISES = """
def predict_linear_classifier(W, X):
    return (X @ W).argmax(dim=2)                 # IndexError: broken on purpose
"""

ONE_PARAM_SET_RAISES = """
def test_one_param_set(cls, data_dict, lr, reg, num_iters=2000):
    cls.train(data_dict["X_train"], data_dict["y_train"], learning_rate=lr, reg=reg, num_iters=num_iters)
    raise RuntimeError("the accuracies are left for later")        # its own line: never excused
"""

TRAINER_RAISES_ON_LONG_RUNS = """
def train_linear_classifier(loss_func, W, X, y, learning_rate=1e-3, reg=1e-5, num_iters=100, batch_size=200,
                            verbose=False):
    num_train, dim = X.shape
    if num_iters >= 200 and num_train > 1000:
        raise RuntimeError("too long a run")                           # its own line: never excused
    if W is None:
        W = 1e-6 * torch.randn(dim, int(y.max().item()) + 1, device=X.device, dtype=X.dtype)
    loss_history = []
    for it in range(num_iters):
        X_batch, y_batch = sample_batch(X, y, num_train, batch_size)
        loss, grad = loss_func(W, X_batch, y_batch, reg)
        loss_history.append(float(loss))
        W = W - learning_rate * grad
    return W, loss_history
"""

NN_TRAIN_STALLS_ON_THE_TOY = NN_TRAIN_RAISES_ON_THE_TOY.replace(
    'raise RuntimeError("nn_train gives up on the toy problem")     # its own line: never excused',
    "learning_rate = 0.0                      # no training on the toy problem: the blocks do not explain it",
)

# case -> (part graded, {function: source}, the composite, the check ids of the composite that must fail, words)
FARMS = {
    "nn_train raises on the toy problem, sample_batch broken": (
        "two_layer",
        {"sample_batch": FIRST_ROWS_SAMPLE_BATCH, "nn_train": NN_TRAIN_RAISES_ON_THE_TOY},
        "nn_train",
        {"a2.two_layer.train"},
        ["RuntimeError", "gives up"],
    ),
    "nn_train stalls on the toy problem, sample_batch broken": (
        "two_layer",
        {"sample_batch": FIRST_ROWS_SAMPLE_BATCH, "nn_train": NN_TRAIN_STALLS_ON_THE_TOY},
        "nn_train",
        {"a2.two_layer.train"},
        ["should fall below 1.0"],
    ),
    "test_one_param_set raises, predict_linear_classifier broken": (
        "linear",
        {"predict_linear_classifier": PREDICT_RAISES, "test_one_param_set": ONE_PARAM_SET_RAISES},
        "test_one_param_set",
        {"a2.linear.test_one_param_set"},
        ["RuntimeError", "left for later", "course's own"],
    ),
    "train_linear_classifier raises on long runs, sample_batch broken": (
        "linear",
        {"sample_batch": FIRST_ROWS_SAMPLE_BATCH, "train_linear_classifier": TRAINER_RAISES_ON_LONG_RUNS},
        "train_linear_classifier",
        {"a2.linear.train_accuracy"},
        ["RuntimeError", "too long a run", "course's own"],
    ),
}


@pytest.mark.parametrize("case", sorted(FARMS))
def test_a_broken_block_does_not_excuse_a_composite_that_fails_on_its_own(tmp_path, case):
    part, sources, composite, lost_checks, words = FARMS[case]
    sub = copy_submission(tmp_path, packages=("a2_linear",))
    for function, source in sources.items():
        replace_function(sub / A2.part_of(function).file, function, source)
    result = grade(sub, "a2_linear", device="cpu", parts=[part])
    lost = {c.id: c.output for c in result.checks if not c.passed}
    assert lost_checks <= set(lost), feedback(result)
    for check_id in lost_checks:
        assert composite in lost[check_id] and all(w in lost[check_id] for w in words), lost[check_id]
    # everything else the composite is judged on passes: it loses exactly the checks it fails on its own
    assert {c.id for c in result.checks if c.function == composite and not c.passed} == lost_checks
    assert failed(result) <= set(sources)  # only the functions broken on purpose lose points


# ---- fairness: correct code in the course's own conventions keeps its points ------------------------------------
# Each of these lost points before: F.one_hot was forbidden with all of torch.nn; train_linear_classifier had to
# build a new W (the course's code updates it in place); nn_train had to end its epochs at (it + 1) % ... (the
# course's given loop tests it % ...); find_best_net was handed 192 features and 5 classes (a net built for the
# course's 3x32x32 images and 10 classes broke); and a submission's own copy of the given classes ran.

SOFTMAX_ONE_HOT = """
def softmax_loss_vectorized(W, X, y, reg):
    N, C = X.shape[0], W.shape[1]
    scores = X @ W
    scores = scores - scores.max(dim=1, keepdim=True).values
    probs = torch.exp(scores) / torch.exp(scores).sum(dim=1, keepdim=True)
    Y = F.one_hot(y, num_classes=C).to(W.dtype)               # a utility, not a loss: allowed
    loss = -(torch.log(probs) * Y).sum() / N + reg * torch.sum(W * W)
    dW = X.t() @ (probs - Y) / N + 2 * reg * W
    return loss, dW
"""

TRAIN_IN_PLACE = """
def train_linear_classifier(loss_func, W, X, y, learning_rate=1e-3, reg=1e-5, num_iters=100, batch_size=200,
                            verbose=False):
    num_train, dim = X.shape
    if W is None:
        num_classes = torch.max(y) + 1
        W = 0.000001 * torch.randn(dim, num_classes, device=X.device, dtype=X.dtype)
    loss_history = []
    for it in range(num_iters):
        X_batch, y_batch = sample_batch(X, y, num_train, batch_size)
        loss, grad = loss_func(W, X_batch, y_batch, reg)
        loss_history.append(loss.item())
        W -= learning_rate * grad                                # in place, as the course's code does
    return W, loss_history
"""

NN_TRAIN_COURSE_LOOP = """
def nn_train(params, loss_func, pred_func, X, y, X_val, y_val, learning_rate=1e-3, learning_rate_decay=0.95,
             reg=5e-6, num_iters=100, batch_size=200, verbose=False):
    num_train = X.shape[0]
    iterations_per_epoch = max(num_train // batch_size, 1)
    loss_history, train_acc_history, val_acc_history = [], [], []
    for it in range(num_iters):
        X_batch, y_batch = sample_batch(X, y, num_train, batch_size)
        loss, grads = loss_func(params, X_batch, y=y_batch, reg=reg)
        loss_history.append(loss.item())
        params["W1"] -= learning_rate * grads["W1"]
        params["b1"] -= learning_rate * grads["b1"]
        params["W2"] -= learning_rate * grads["W2"]
        params["b2"] -= learning_rate * grads["b2"]
        if it % iterations_per_epoch == 0:                       # the course's given loop
            y_train_pred = pred_func(params, loss_func, X_batch)
            train_acc_history.append((y_train_pred == y_batch).float().mean().item())
            y_val_pred = pred_func(params, loss_func, X_val)
            val_acc_history.append((y_val_pred == y_val).float().mean().item())
            learning_rate *= learning_rate_decay
    return {"loss_history": loss_history, "train_acc_history": train_acc_history,
            "val_acc_history": val_acc_history}
"""

FIND_BEST_NET_FOR_CIFAR = """
def find_best_net(data_dict, get_param_set_fn):
    best_net, best_stat, best_val_acc = None, None, 0.0
    learning_rates, hidden_sizes, regularization_strengths, learning_rate_decays = get_param_set_fn()
    for lr in learning_rates:
        for hs in hidden_sizes:
            for reg in regularization_strengths:
                for decay in learning_rate_decays:
                    net = TwoLayerNet(3 * 32 * 32, hs, 10, device=data_dict["X_train"].device)  # the course's shapes
                    stat = net.train(data_dict["X_train"], data_dict["y_train"], data_dict["X_val"],
                                     data_dict["y_val"], num_iters=1000, batch_size=200, learning_rate=lr,
                                     learning_rate_decay=decay, reg=reg)
                    val_acc = (net.predict(data_dict["X_val"]) == data_dict["y_val"]).float().mean().item()
                    if val_acc > best_val_acc:
                        best_net, best_stat, best_val_acc = net, stat, val_acc
    return best_net, best_stat, best_val_acc
"""

# A submission ported from the course still holds its own copy of the given classes; the grader uses the kit's.
GIVEN_CLASSES_COPY = """


class LinearClassifier:
    def __init__(self):
        self.W = None

    def train(self, *args, **kwargs):
        raise RuntimeError("a submission's copy of given code ran")


class LinearSVM(LinearClassifier):
    pass


class Softmax(LinearClassifier):
    pass
"""


def test_correct_code_in_the_courses_conventions_keeps_its_points(tmp_path):
    sub = copy_submission(tmp_path, packages=("a2_linear",))
    linear, net = sub / "a2_linear/linear_classifier.py", sub / "a2_linear/two_layer_net.py"
    replace_function(linear, "softmax_loss_vectorized", SOFTMAX_ONE_HOT)
    replace_function(linear, "train_linear_classifier", TRAIN_IN_PLACE)
    linear.write_text(
        linear.read_text().replace("import torch\n", "import torch\nimport torch.nn.functional as F\n", 1)
        + GIVEN_CLASSES_COPY
    )
    replace_function(net, "nn_train", NN_TRAIN_COURSE_LOOP)
    replace_function(net, "find_best_net", FIND_BEST_NET_FOR_CIFAR)
    result = grade(sub, "a2_linear", device="cpu")
    assert failed(result) == set(), feedback(result)
    assert result.score == pytest.approx(100)


# Blame where it belongs: losses that crash in float32 (the dtype the trainers train in) cost their own points, not
# the trainers'; a find_best_net that crashes in its own lines is told about its own error, not sent to a block
# that is right (an nn_train with the course's loop once was judged wrong, and find_best_net told to fix it first).
FIND_BEST_NET_RAISES = """
def find_best_net(data_dict, get_param_set_fn):
    learning_rates, hidden_sizes, regularization_strengths, learning_rate_decays = get_param_set_fn()
    net = TwoLayerNet(data_dict["X_train"].shape[1], hidden_sizes[0], 10, device=data_dict["X_train"].device)
    stat = net.train(data_dict["X_train"], data_dict["y_train"], data_dict["X_val"], data_dict["y_val"],
                     num_iters=50, learning_rate=learning_rates[0])
    return net, stat, stat["val_acc_history"][100]               # IndexError in find_best_net's own line
"""

LOSSES = ("svm_loss_naive", "svm_loss_vectorized", "softmax_loss_naive", "softmax_loss_vectorized")


def test_blame_stays_with_the_function_that_fails(tmp_path):
    sub = copy_submission(tmp_path, packages=("a2_linear",))
    linear, net = sub / "a2_linear/linear_classifier.py", sub / "a2_linear/two_layer_net.py"
    # every loss computes its scores in float64 whatever W is: right in float64, a RuntimeError in float32
    text = linear.read_text()
    assert text.count("X @ W  # (N, C)") == 2 and text.count("X[i] @ W  # (C,)") == 2
    linear.write_text(
        text.replace("X @ W  # (N, C)", "X @ W.double()  # (N, C)").replace(
            "X[i] @ W  # (C,)", "X[i] @ W.double()  # (C,)"
        )
    )
    replace_function(net, "nn_train", NN_TRAIN_COURSE_LOOP)
    replace_function(net, "find_best_net", FIND_BEST_NET_RAISES)
    result = grade(sub, "a2_linear", device="cpu")
    assert failed(result) == {*LOSSES, "find_best_net"}, feedback(result)
    assert result.score == pytest.approx(100 - sum(POINTS[f] for f in (*LOSSES, "find_best_net")))
    by_function = {c.function: c.output for c in result.checks if not c.passed}
    assert all("float" in by_function[f] and "RuntimeError" in by_function[f] for f in LOSSES), feedback(result)
    # the trainers were judged with the course's loss in place of the student's (a note says so)
    notes = {c.id: c.output for c in result.checks if c.passed}
    assert (
        "svm_loss_vectorized" in notes["a2.linear.train_accuracy"]
        and "course's own" in notes["a2.linear.train_accuracy"]
    )
    text = by_function["find_best_net"]
    assert "IndexError" in text and "find_best_net" in text
    assert "first" not in text and "nn_train" not in text, text  # no "fix nn_train first": it is right


# ---- the hyperparameter searches: the judge trains every combination at once ---------------------


def test_the_judges_search_trains_each_setting_as_if_alone():
    """All combinations train together (one matrix product per step), yet a setting's weights do not depend on the
    others in the list: a student's best combination trains the same whatever else they try."""
    import sys

    from grader.judge.loading import load_checks

    checks = sys.modules[load_checks(A2, hidden=False)[0].body.__module__]
    g = torch.Generator().manual_seed(0)
    data = {"X_train": torch.randn(60, 7, generator=g), "y_train": torch.randint(0, 4, (60,), generator=g)}
    for kind in ("svm", "softmax"):
        both = checks.judge_sgd_many(kind, data, [(1e-3, 0.0), (0.5, 1e-2)], 20, torch.device("cpu"))
        alone = checks.judge_sgd_many(kind, data, [(0.5, 1e-2)], 20, torch.device("cpu"))
        assert torch.equal(both[1], alone[0]) and not torch.equal(both[0], both[1])
        diverged = checks.judge_sgd_many(kind, data, [(1e30, 1.0), (0.5, 1e-2)], 20, torch.device("cpu"))
        assert not torch.isfinite(diverged[0]).all() and torch.equal(diverged[1], alone[0])  # no harm to the other


def test_a_search_that_never_leaves_the_start_misses_the_target(tmp_path):
    sub = copy_submission(tmp_path, packages=("a2_linear",))
    replace_function(
        sub / "a2_linear" / "linear_classifier.py",
        "svm_get_search_params",
        "def svm_get_search_params():\n    return [1e-9, 2e-9], [1e-3, 1e-2]\n",
    )
    result = grade(sub, "a2_linear", device="cpu", parts=["linear"])
    assert failed(result) == {"svm_get_search_params"}, feedback(result)
    assert "the best of your 4 combinations reaches" in feedback(result) and "below the target" in feedback(result)
