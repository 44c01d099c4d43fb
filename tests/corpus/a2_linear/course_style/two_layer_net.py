"""A2's two-layer net as students port it from the course: the ReLU as a mask h * (h >= 0), F.one_hot and logsumexp
in the loss, the ReLU's backward with torch.where, the course's given loop (it % iterations_per_epoch == 0) with
the parameters stored back in the dict (params[k] = params[k] - ...), torch.argmax, and a find_best_net built for
the course's images (3 * 32 * 32 inputs, 10 classes) over itertools.product."""

import itertools

import torch
import torch.nn.functional as F

from a2_linear.classifiers import TwoLayerNet
from a2_linear.linear_classifier import sample_batch


def nn_forward_pass(params, X):
    W1, b1 = params["W1"], params["b1"]
    W2, b2 = params["W2"], params["b2"]
    h = X.mm(W1) + b1
    hidden = h * (h >= 0)
    scores = hidden.mm(W2) + b2
    return scores, hidden


def nn_forward_backward(params, X, y=None, reg=0.0):
    W1, W2 = params["W1"], params["W2"]
    N = X.shape[0]
    scores, h1 = nn_forward_pass(params, X)
    if y is None:
        return scores
    log_probs = scores - torch.logsumexp(scores, dim=1, keepdim=True)
    Y = F.one_hot(y, scores.shape[1]).to(scores.dtype)
    loss = -(log_probs * Y).sum() / N + reg * (torch.sum(W1 * W1) + torch.sum(W2 * W2))
    grads = {}
    dscores = (log_probs.exp() - Y) / N
    grads["W2"] = h1.t().mm(dscores) + 2 * reg * W2
    grads["b2"] = dscores.sum(dim=0)
    dh1 = dscores.mm(W2.t())
    dh1 = torch.where(h1 > 0, dh1, torch.zeros_like(dh1))
    grads["W1"] = X.t().mm(dh1) + 2 * reg * W1
    grads["b1"] = dh1.sum(dim=0)
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
    loss_history = []
    train_acc_history = []
    val_acc_history = []
    for it in range(num_iters):
        X_batch, y_batch = sample_batch(X, y, num_train, batch_size)
        loss, grads = loss_func(params, X_batch, y=y_batch, reg=reg)
        loss_history.append(loss.item())
        for k in ("W1", "b1", "W2", "b2"):
            params[k] = params[k] - learning_rate * grads[k]
        if verbose and it % 100 == 0:
            print(f"iteration {it} / {num_iters}: loss {loss.item():f}")
        if it % iterations_per_epoch == 0:
            y_train_pred = pred_func(params, loss_func, X_batch)
            train_acc = (y_train_pred == y_batch).float().mean().item()
            y_val_pred = pred_func(params, loss_func, X_val)
            val_acc = (y_val_pred == y_val).float().mean().item()
            train_acc_history.append(train_acc)
            val_acc_history.append(val_acc)
            learning_rate *= learning_rate_decay
    return {"loss_history": loss_history, "train_acc_history": train_acc_history, "val_acc_history": val_acc_history}


def nn_predict(params, loss_func, X):
    return torch.argmax(loss_func(params, X), dim=1)


def nn_get_search_params():
    return [1e-1, 5e-1], [64, 128], [1e-4, 1e-3], [0.95]


def find_best_net(data_dict, get_param_set_fn):
    best_net, best_stat, best_val_acc = None, None, 0.0
    X_train, y_train = data_dict["X_train"], data_dict["y_train"]
    X_val, y_val = data_dict["X_val"], data_dict["y_val"]
    for lr, hs, reg, decay in itertools.product(*get_param_set_fn()):
        net = TwoLayerNet(3 * 32 * 32, hs, 10, device=X_train.device, dtype=X_train.dtype)
        stat = net.train(
            X_train,
            y_train,
            X_val,
            y_val,
            num_iters=1000,
            batch_size=200,
            learning_rate=lr,
            learning_rate_decay=decay,
            reg=reg,
        )
        val_acc = (net.predict(X_val) == y_val).float().mean().item()
        if val_acc > best_val_acc:
            best_net, best_stat, best_val_acc = net, stat, val_acc
    return best_net, best_stat, best_val_acc
