"""The course's own A2 building blocks, for A2's checks.

When a composite (a trainer, a search, nn_forward_backward on top of nn_forward_pass, ...) fails and a building
block it calls failed its own checks, the grader judges the composite again with these in place of the
student's blocks (see [parts.blocks] in assignment.toml). Each has the student's signature and return convention
(the docstrings in a2_linear/), computes in the dtype and on the device of its inputs and returns detached
tensors. Staff only: the student kit has no oracles (the checks compute their expected values themselves).

Self-contained: imports torch only, and never imports student code (the trainers call the functions
they are given, as the student's do; those run under the guard as the student's own code).
"""

from __future__ import annotations

import torch

# ---- linear classifiers -----------------------------------------------------------------------------


def svm_loss(W: torch.Tensor, X: torch.Tensor, y: torch.Tensor, reg: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean over examples of sum_{j != y_i} max(0, s_j - s_{y_i} + 1), plus reg * sum(W * W); gradient 0 on a
    hinge's kink."""
    W, X = W.detach(), X.detach()
    N = X.shape[0]
    rows = torch.arange(N, device=X.device)
    scores = X @ W  # (N, C)
    margins = (scores - scores[rows, y][:, None] + 1).clamp(min=0)  # (N, C)
    margins[rows, y] = 0
    loss = margins.sum() / N + reg * (W * W).sum()
    dscores = (margins > 0).to(W.dtype)  # (N, C)
    dscores[rows, y] = -dscores.sum(dim=1)
    return loss, X.t() @ dscores / N + 2 * reg * W


def softmax_loss(W: torch.Tensor, X: torch.Tensor, y: torch.Tensor, reg: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy of the scores X W, plus reg * sum(W * W)."""
    W, X = W.detach(), X.detach()
    N = X.shape[0]
    rows = torch.arange(N, device=X.device)
    scores = X @ W  # (N, C)
    log_probs = scores - torch.logsumexp(scores, dim=1, keepdim=True)  # (N, C)
    loss = -log_probs[rows, y].mean() + reg * (W * W).sum()
    dscores = log_probs.exp()  # (N, C)
    dscores[rows, y] -= 1
    return loss, X.t() @ dscores / N + 2 * reg * W


def sample_batch(X: torch.Tensor, y: torch.Tensor, num_train: int, batch_size: int):
    indices = torch.randint(num_train, (batch_size,), device=X.device)
    return X[indices], y[indices]


def train_linear_classifier(
    loss_func, W, X, y, learning_rate=1e-3, reg=1e-5, num_iters=100, batch_size=200, verbose=False
):
    num_train, dim = X.shape
    if W is None:
        W = 1e-6 * torch.randn(dim, int(y.max().item()) + 1, device=X.device, dtype=X.dtype)
    loss_history = []
    for it in range(num_iters):
        X_batch, y_batch = sample_batch(X, y, num_train, batch_size)
        loss, grad = loss_func(W, X_batch, y_batch, reg)
        loss_history.append(float(loss))
        W = W - learning_rate * grad
        if verbose and it % 100 == 0:
            print(f"iteration {it} / {num_iters}: loss {float(loss):f}")
    return W, loss_history


def predict_linear_classifier(W: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    return (X @ W).argmax(dim=1)


# ---- the two-layer net ------------------------------------------------------------------------------


def nn_forward_pass(params: dict, X: torch.Tensor):
    hidden = (X @ params["W1"] + params["b1"]).clamp(min=0)  # (N, H)
    return hidden @ params["W2"] + params["b2"], hidden


def nn_forward_backward(params: dict, X: torch.Tensor, y: torch.Tensor | None = None, reg: float = 0.0):
    scores, hidden = nn_forward_pass(params, X)
    if y is None:
        return scores
    W1, W2 = params["W1"], params["W2"]
    N = X.shape[0]
    rows = torch.arange(N, device=X.device)
    log_probs = scores - torch.logsumexp(scores, dim=1, keepdim=True)  # (N, C)
    loss = -log_probs[rows, y].mean() + reg * ((W1 * W1).sum() + (W2 * W2).sum())
    dscores = log_probs.exp()
    dscores[rows, y] -= 1
    dscores = dscores / N  # (N, C)
    dhidden = (dscores @ W2.t()) * (hidden > 0)  # (N, H)
    grads = {
        "W1": X.t() @ dhidden + 2 * reg * W1,
        "b1": dhidden.sum(dim=0),
        "W2": hidden.t() @ dscores + 2 * reg * W2,
        "b2": dscores.sum(dim=0),
    }
    return loss, grads


def nn_train(
    params,
    loss_func,
    pred_func,
    X,
    y,
    X_val,
    y_val,
    learning_rate=1e-3,
    learning_rate_decay=0.95,
    reg=5e-6,
    num_iters=100,
    batch_size=200,
    verbose=False,
):
    num_train = X.shape[0]
    iterations_per_epoch = max(num_train // batch_size, 1)
    loss_history, train_acc_history, val_acc_history = [], [], []
    for it in range(num_iters):
        X_batch, y_batch = sample_batch(X, y, num_train, batch_size)
        loss, grads = loss_func(params, X_batch, y=y_batch, reg=reg)
        loss_history.append(float(loss))
        for name in params:
            params[name] -= learning_rate * grads[name]
        if verbose and it % 100 == 0:
            print(f"iteration {it} / {num_iters}: loss {float(loss):f}")
        if (it + 1) % iterations_per_epoch == 0:
            train_acc_history.append((pred_func(params, loss_func, X_batch) == y_batch).double().mean().item())
            val_acc_history.append((pred_func(params, loss_func, X_val) == y_val).double().mean().item())
            learning_rate *= learning_rate_decay
    return {"loss_history": loss_history, "train_acc_history": train_acc_history, "val_acc_history": val_acc_history}


def nn_predict(params: dict, loss_func, X: torch.Tensor) -> torch.Tensor:
    return loss_func(params, X).argmax(dim=1)


def nn_get_search_params():
    return [3e-1, 1e0], [128], [1e-4, 1e-3], [0.95]


ORACLES = {
    "svm_loss_naive": svm_loss,
    "svm_loss_vectorized": svm_loss,
    "softmax_loss_naive": softmax_loss,
    "softmax_loss_vectorized": softmax_loss,
    "sample_batch": sample_batch,
    "train_linear_classifier": train_linear_classifier,
    "predict_linear_classifier": predict_linear_classifier,
    "nn_forward_pass": nn_forward_pass,
    "nn_forward_backward": nn_forward_backward,
    "nn_train": nn_train,
    "nn_predict": nn_predict,
    "nn_get_search_params": nn_get_search_params,
}
