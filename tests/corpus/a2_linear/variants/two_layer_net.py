"""A2's two-layer net in other idioms students use: torch.addmm and a torch.where ReLU, a loss and gradients
computed in float64 inside that return the input's dtype (einsum for the weight gradients, the ReLU's mask read
from the pre-activation), the kit's loop with in-place sub_ steps, argmax through .max(1)[1], and a find_best_net
that sizes its nets from the data and tries hidden sizes first."""

import torch

from a2_linear.classifiers import TwoLayerNet
from a2_linear.linear_classifier import sample_batch


def nn_forward_pass(params, X):
    pre = torch.addmm(params["b1"], X, params["W1"])
    hidden = torch.where(pre > 0, pre, torch.zeros_like(pre))
    scores = torch.addmm(params["b2"], hidden, params["W2"])
    return scores, hidden


def nn_forward_backward(params, X, y=None, reg=0.0):
    scores, _ = nn_forward_pass(params, X)
    if y is None:
        return scores
    dtype = X.dtype
    W1, b1 = params["W1"].double(), params["b1"].double()  # no comprehension: loops are not allowed here
    W2, b2 = params["W2"].double(), params["b2"].double()
    X64 = X.double()
    N = X64.shape[0]
    pre = X64 @ W1 + b1
    hidden = pre.clamp(min=0)
    s = hidden @ W2 + b2
    s = s - s.max(dim=1, keepdim=True).values
    log_norm = torch.log(torch.exp(s).sum(dim=1))
    rows = torch.arange(N, device=X.device)
    loss = (log_norm - s[rows, y]).mean() + reg * ((W1**2).sum() + (W2**2).sum())
    dscores = torch.exp(s - log_norm[:, None])
    dscores[rows, y] -= 1
    dscores /= N
    dhidden = (dscores @ W2.t()) * (pre > 0)
    grads = {
        "W1": (torch.einsum("nd,nh->dh", X64, dhidden) + 2 * reg * W1).to(dtype),
        "b1": dhidden.sum(dim=0).to(dtype),
        "W2": (torch.einsum("nh,nc->hc", hidden, dscores) + 2 * reg * W2).to(dtype),
        "b2": dscores.sum(dim=0).to(dtype),
    }
    return loss.to(dtype), grads


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
        for name, grad in grads.items():
            params[name].sub_(learning_rate * grad)
        if (it + 1) % iterations_per_epoch == 0:
            train_acc_history.append((pred_func(params, loss_func, X_batch) == y_batch).double().mean().item())
            val_acc_history.append((pred_func(params, loss_func, X_val) == y_val).double().mean().item())
            learning_rate *= learning_rate_decay
    return {"loss_history": loss_history, "train_acc_history": train_acc_history, "val_acc_history": val_acc_history}


def nn_predict(params, loss_func, X):
    return loss_func(params, X).max(1)[1]


def nn_get_search_params():
    return [0.3, 1.0], [128, 256], [1e-4], [0.9, 0.95]


def find_best_net(data_dict, get_param_set_fn):
    X_train, y_train = data_dict["X_train"], data_dict["y_train"]
    X_val, y_val = data_dict["X_val"], data_dict["y_val"]
    D, C = X_train.shape[1], int(y_train.max()) + 1
    learning_rates, hidden_sizes, regs, decays = get_param_set_fn()
    results = []
    for hidden_size in hidden_sizes:
        for lr in learning_rates:
            for reg in regs:
                for decay in decays:
                    net = TwoLayerNet(D, hidden_size, C, dtype=X_train.dtype, device=X_train.device)
                    stats = net.train(
                        X_train,
                        y_train,
                        X_val,
                        y_val,
                        learning_rate=lr,
                        learning_rate_decay=decay,
                        reg=reg,
                        num_iters=1200,
                        batch_size=200,
                    )
                    val_acc = (net.predict(X_val) == y_val).double().mean().item()
                    results.append((val_acc, net, stats))
    best_val_acc, best_net, best_stat = max(results, key=lambda r: r[0])
    return best_net, best_stat, best_val_acc
