"""A2's linear classifiers as students port them from the course: a naive SVM loss that starts from a Python 0.0,
an SVM loss with gather and scatter_ for the margins, a softmax loss computed in float64 inside that returns the
input's dtype, F.one_hot and logsumexp in the vectorised softmax loss, index_select for the minibatch, the
course's in-place update W -= learning_rate * grad (with C = torch.max(y) + 1 a tensor), torch.max for the
labels, and accuracies from .float().mean()."""

import torch
import torch.nn.functional as F


def svm_loss_naive(W, X, y, reg):
    dW = torch.zeros_like(W)
    num_classes = W.shape[1]
    num_train = X.shape[0]
    loss = 0.0
    for i in range(num_train):
        scores = W.t().mv(X[i])
        correct_class_score = scores[y[i]]
        for j in range(num_classes):
            if j == y[i]:
                continue
            margin = scores[j] - correct_class_score + 1
            if margin > 0:
                loss += margin
                dW[:, j] += X[i]
                dW[:, y[i]] -= X[i]
    loss /= num_train
    loss += reg * torch.sum(W * W)
    dW /= num_train
    dW += 2 * reg * W
    return loss, dW


def svm_loss_vectorized(W, X, y, reg):
    num_train = X.shape[0]
    scores = X.mm(W)
    correct = scores.gather(1, y.view(-1, 1))
    margins = torch.clamp(scores - correct + 1, min=0)
    margins.scatter_(1, y.view(-1, 1), 0)
    loss = margins.sum() / num_train + reg * torch.sum(W * W)
    mask = (margins > 0).to(W.dtype)
    mask.scatter_(1, y.view(-1, 1), -mask.sum(dim=1, keepdim=True))
    dW = X.t().mm(mask) / num_train + 2 * reg * W
    return loss, dW


def softmax_loss_naive(W, X, y, reg):
    W64, X64 = W.double(), X.double()
    loss = torch.zeros((), dtype=torch.float64, device=W.device)
    dW = torch.zeros_like(W64)
    for i in range(X64.shape[0]):
        scores = X64[i] @ W64
        log_probs = scores - torch.logsumexp(scores, dim=0)
        loss -= log_probs[y[i]]
        probs = log_probs.exp()
        for j in range(W64.shape[1]):
            dW[:, j] += probs[j] * X64[i]
        dW[:, y[i]] -= X64[i]
    loss = loss / X64.shape[0] + reg * (W64**2).sum()
    dW = dW / X64.shape[0] + 2 * reg * W64
    return loss.to(W.dtype), dW.to(W.dtype)


def softmax_loss_vectorized(W, X, y, reg):
    num_train, num_classes = X.shape[0], W.shape[1]
    scores = X @ W
    log_probs = scores - torch.logsumexp(scores, dim=1, keepdim=True)
    Y = F.one_hot(y, num_classes).to(W.dtype)
    loss = -(Y * log_probs).sum() / num_train + reg * (W**2).sum()
    dW = X.T @ (log_probs.exp() - Y) / num_train + 2 * reg * W
    return loss, dW


def sample_batch(X, y, num_train, batch_size):
    idx = torch.randint(0, num_train, size=(batch_size,), device=X.device)
    return X.index_select(0, idx), y[idx]


def train_linear_classifier(
    loss_func, W, X, y, learning_rate=1e-3, reg=1e-5, num_iters=100, batch_size=200, verbose=False
):
    num_train, dim = X.shape
    if W is None:
        num_classes = torch.max(y) + 1
        W = 0.000001 * torch.randn(dim, num_classes, device=X.device, dtype=X.dtype)
    loss_history = []
    for it in range(num_iters):
        X_batch, y_batch = sample_batch(X, y, num_train, batch_size)
        loss, grad = loss_func(W, X_batch, y_batch, reg)
        loss_history.append(loss.item())
        W -= learning_rate * grad
        if verbose and it % 100 == 0:
            print(f"iteration {it} / {num_iters}: loss {loss.item():f}")
    return W, loss_history


def predict_linear_classifier(W, X):
    _, y_pred = torch.max(X.mm(W), dim=1)
    return y_pred


def svm_get_search_params():
    return [5e-3, 1e-2, 2e-2], [1e-4, 1e-3, 1e-2]


def softmax_get_search_params():
    return [5e-2, 1e-1, 2e-1], [1e-4, 1e-3]


def test_one_param_set(cls, data_dict, lr, reg, num_iters=2000):
    cls.train(data_dict["X_train"], data_dict["y_train"], lr, reg, num_iters)
    y_train_pred = cls.predict(data_dict["X_train"])
    train_acc = (y_train_pred == data_dict["y_train"]).float().mean().item()
    y_val_pred = cls.predict(data_dict["X_val"])
    val_acc = (y_val_pred == data_dict["y_val"]).float().mean().item()
    return cls, train_acc, val_acc
