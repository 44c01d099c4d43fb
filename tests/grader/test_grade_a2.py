"""Grading A2 end to end: the reference scores full marks, and classic bugs cost exactly their function's points.

Each bug is put into a copy of the reference and graded on its part only. Composite functions (the trainers, the
searches) are judged with the student's own building blocks, so a bug in a loss must not cost the trainer's points.
"""

import pytest

from grader import manifest
from grader.runner import grade
from tests.conftest import ROOT, copy_submission, replace_function

A2 = manifest.load("a2_linear", ROOT)
POINTS = {f: pts for p in A2.parts for f, pts in p.functions.items()}


def failed(result):
    return {c.function for c in result.checks if not c.passed}


def feedback(result):
    return "\n".join(c.output for c in result.checks if not c.passed)


def test_the_reference_scores_full_marks():
    result = grade(ROOT, "a2_linear", device="cpu")
    assert [c.output for c in result.checks if not c.passed] == []
    assert result.score == pytest.approx(100) and result.max_score == pytest.approx(100)
    assert not any(c.hidden for c in result.checks)
    assert result.dataset == "digits"       # the data set is recorded (no CIFAR-10 here)
    notes = "\n".join(c.output for c in result.checks)
    assert "faster" in notes and "test split" in notes     # measured ratios and accuracies are reported


@pytest.mark.slow
def test_the_reference_scores_full_marks_with_the_hidden_checks():
    result = grade(ROOT, "a2_linear", device="cpu", hidden=True)
    assert [c.output for c in result.checks if not c.passed] == []
    assert result.score == pytest.approx(100) and result.max_score == pytest.approx(100)
    assert any(c.hidden for c in result.checks)
    assert {c.function for c in result.checks if c.hidden} >= {
        "svm_loss_naive", "svm_loss_vectorized", "softmax_loss_naive", "softmax_loss_vectorized", "sample_batch",
        "train_linear_classifier", "predict_linear_classifier", "test_one_param_set", "nn_forward_pass",
        "nn_forward_backward", "nn_train", "nn_predict", "find_best_net"}


SVM_NO_REG_GRADIENT = '''
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
'''

SVM_CORRECT_CLASS_COUNTED = '''
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
'''

SOFTMAX_NOT_DIVIDED_BY_N = '''
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
'''

SOFTMAX_UNSTABLE = '''
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
'''

SOFTMAX_BACKWARD = '''
def softmax_loss_vectorized(W, X, y, reg):
    N = X.shape[0]
    Wg = W.detach().clone().requires_grad_(True)
    s = X @ Wg
    s = s - s.max(dim=1, keepdim=True).values
    loss = (torch.log(torch.exp(s).sum(dim=1)) - s[torch.arange(N), y]).mean() + reg * torch.sum(Wg * Wg)
    loss.backward()
    return loss.detach(), Wg.grad
'''

SOFTMAX_AUTOGRAD_HIDDEN = '''
def softmax_loss_vectorized(W, X, y, reg):
    N = X.shape[0]
    Wg = W.detach().clone()
    getattr(Wg, "requires" + "_grad_")(True)                   # invisible to the static scan
    s = X @ Wg
    s = s - s.max(dim=1, keepdim=True).values
    loss = (torch.log(torch.exp(s).sum(dim=1)) - s[torch.arange(N), y]).mean() + reg * torch.sum(Wg * Wg)
    (g,) = getattr(torch, "auto" + "grad").grad(loss, Wg)
    return loss.detach(), g
'''

NN_TRAIN_NO_DECAY = '''
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
'''

FORWARD_WITHOUT_B2 = '''
def nn_forward_pass(params, X):
    hidden = (X @ params["W1"] + params["b1"]).clamp(min=0)
    return hidden @ params["W2"], hidden    # b2 is missing
'''

NET_BY_BACKWARD = '''
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
'''

# bug -> (function, source, words the feedback must hold)
BREAKS = {
    "svm gradient without the regulariser": ("svm_loss_vectorized", SVM_NO_REG_GRADIENT,
                                             ["dW", "missing the regulariser's gradient 2 * reg * W"]),
    "svm counts the correct class": ("svm_loss_naive", SVM_CORRECT_CLASS_COUNTED,
                                     ["the loss", "correct class's own hinge", "j != y[i]"]),
    "softmax gradient not divided by N": ("softmax_loss_vectorized", SOFTMAX_NOT_DIVIDED_BY_N,
                                          ["dW", "not divided by N"]),
    "softmax without the max shift": ("softmax_loss_naive", SOFTMAX_UNSTABLE,
                                      ["nan or inf", "subtract each row's largest score"]),
    "softmax by .backward()": ("softmax_loss_vectorized", SOFTMAX_BACKWARD,
                               ["loss.backward", "requires_grad_", "may not use"]),
    "softmax by autograd behind getattr": ("softmax_loss_vectorized", SOFTMAX_AUTOGRAD_HIDDEN,
                                           ["called torch.Tensor.requires_grad_", "torch.autograd.grad"]),
    "nn_train without learning rate decay": ("nn_train", NN_TRAIN_NO_DECAY,
                                             ["learning rate never decays", "learning_rate_decay"]),
    # the next two break a function the composites (nn_train, nn_predict, find_best_net) build on: only its own
    # points may go
    "forward pass without b2": ("nn_forward_pass", FORWARD_WITHOUT_B2, ["b2 is missing from the second layer"]),
    "two-layer gradients by autograd": ("nn_forward_backward", NET_BY_BACKWARD,
                                        ["requires_grad_", "loss.backward", "may not use"]),
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


def test_a_vectorized_loss_that_calls_the_naive_one_loses_the_speed_check(tmp_path):
    sub = copy_submission(tmp_path, packages=("a2_linear",))
    replace_function(sub / "a2_linear/linear_classifier.py", "softmax_loss_vectorized", '''
        def softmax_loss_vectorized(W, X, y, reg):
            return softmax_loss_naive(W, X, y, reg)      # no loop here, but loops underneath
        ''')
    result = grade(sub, "a2_linear", device="cpu", parts=["linear"])
    lost = [c for c in result.checks if not c.passed]
    assert [c.id for c in lost] == ["a2.linear.softmax_vectorized_speed"], feedback(result)  # right, only slow
    assert "not much faster than a loop" in lost[0].output and "softmax_loss_naive" in lost[0].output
    assert 0 < 60 - result.score < POINTS["softmax_loss_vectorized"]
