"""A2's linear classifiers in other idioms students use: naive losses whose loops sit in a helper (loops are asked
for there), an SVM loss built from a one-hot mask, torch.where and einsum, a softmax loss computed in float64 inside
that returns the input's dtype (shifted by the row maximum), minibatches drawn with torch.multinomial, an in-place
step with W.sub_, argmax through .max(dim=1).indices, and accuracies counted with .sum().item() / N."""

import torch


def _svm_example(scores, label):
    """The hinges of one example's scores and the gradient of their sum with respect to the scores."""
    hinges = torch.zeros_like(scores)
    for j in range(scores.shape[0]):
        if j != label:
            hinges[j] = torch.clamp(scores[j] - scores[label] + 1, min=0)
    dscores = (hinges > 0).to(scores.dtype)
    dscores[label] = -dscores.sum()
    return hinges.sum(), dscores


def svm_loss_naive(W, X, y, reg):
    N = X.shape[0]
    loss = torch.zeros((), dtype=W.dtype, device=W.device)
    dW = torch.zeros_like(W)
    for i in range(N):
        example_loss, dscores = _svm_example(X[i] @ W, int(y[i]))
        loss += example_loss
        dW += torch.outer(X[i], dscores)
    return loss / N + reg * (W * W).sum(), dW / N + 2 * reg * W


def svm_loss_vectorized(W, X, y, reg):
    N = X.shape[0]
    scores = torch.einsum("nd,dc->nc", X, W)
    is_correct = torch.zeros_like(scores).scatter_(1, y[:, None], 1.0).bool()
    correct = scores[is_correct][:, None]
    margins = torch.where(is_correct, torch.zeros_like(scores), torch.clamp(scores - correct + 1, min=0))
    loss = margins.sum() / N + reg * torch.einsum("dc,dc->", W, W)
    active = (margins > 0).to(W.dtype)
    dscores = active - is_correct.to(W.dtype) * active.sum(dim=1, keepdim=True)
    dW = torch.einsum("nd,nc->dc", X, dscores) / N + 2 * reg * W
    return loss, dW


def _softmax_example(x, label, W):
    """One example's loss and its gradient with respect to W, with a loop over the classes."""
    scores = x @ W
    scores = scores - scores.max()
    total = torch.exp(scores).sum()
    grad = torch.zeros_like(W)
    for j in range(W.shape[1]):
        grad[:, j] = torch.exp(scores[j]) / total * x
    grad[:, label] -= x
    return torch.log(total) - scores[label], grad


def softmax_loss_naive(W, X, y, reg):
    N = X.shape[0]
    loss = torch.zeros((), dtype=W.dtype, device=W.device)
    dW = torch.zeros_like(W)
    for i in range(N):
        example_loss, grad = _softmax_example(X[i], y[i], W)
        loss = loss + example_loss
        dW = dW + grad
    return loss / N + reg * torch.sum(W * W), dW / N + 2 * reg * W


def softmax_loss_vectorized(W, X, y, reg):
    W64, X64 = W.double(), X.double()
    N = X64.shape[0]
    scores = X64 @ W64
    scores = scores - scores.max(dim=1, keepdim=True)[0]
    exp_scores = torch.exp(scores)
    probs = exp_scores / exp_scores.sum(dim=1, keepdim=True)
    rows = torch.arange(N, device=X.device)
    loss = -torch.log(probs[rows, y]).mean() + reg * torch.sum(W64 * W64)
    probs[rows, y] -= 1
    dW = X64.t() @ probs / N + 2 * reg * W64
    return loss.to(W.dtype), dW.to(W.dtype)


def sample_batch(X, y, num_train, batch_size):
    weights = torch.ones(num_train, device=X.device)
    indices = torch.multinomial(weights, batch_size, replacement=True)
    return X[indices], y[indices]


def train_linear_classifier(
    loss_func, W, X, y, learning_rate=1e-3, reg=1e-5, num_iters=100, batch_size=200, verbose=False
):
    num_train, dim = X.shape
    if W is None:
        num_classes = int(y.max().item()) + 1
        W = 1e-6 * torch.randn(dim, num_classes, device=X.device, dtype=X.dtype)
    loss_history = []
    for _ in range(num_iters):
        X_batch, y_batch = sample_batch(X, y, num_train, batch_size)
        loss, grad = loss_func(W, X_batch, y_batch, reg)
        loss_history.append(float(loss))
        W.sub_(learning_rate * grad)
    return W, loss_history


def predict_linear_classifier(W, X):
    return (X @ W).max(dim=1).indices


def svm_get_search_params():
    learning_rates = [10.0**e for e in (-3, -2.5, -2)]
    regularization_strengths = [10.0**e for e in (-4, -3, -2, -1)]
    return learning_rates, regularization_strengths


def softmax_get_search_params():
    return [0.03, 0.1, 0.3], [0.0, 1e-3, 1e-2]


def test_one_param_set(cls, data_dict, lr, reg, num_iters=2000):
    cls.train(data_dict["X_train"], data_dict["y_train"], learning_rate=lr, reg=reg, num_iters=num_iters)
    train_acc = (cls.predict(data_dict["X_train"]) == data_dict["y_train"]).sum().item() / len(data_dict["y_train"])
    val_acc = (cls.predict(data_dict["X_val"]) == data_dict["y_val"]).sum().item() / len(data_dict["y_val"])
    return cls, train_acc, val_acc
