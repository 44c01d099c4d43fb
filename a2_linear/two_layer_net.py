"""
A two-layer fully connected neural network: linear - ReLU - linear, trained with the softmax loss.

With N examples of D features, H hidden units and C classes, the network computes

    hidden = max(0, X W1 + b1)        # (N, H)
    scores = hidden W2 + b2           # (N, C)

Its parameters live in a dict `params` with keys 'W1' (D, H), 'b1' (H,), 'W2' (H, C) and 'b2' (C,). The
loss is the mean softmax (cross-entropy) loss over the N examples plus reg * (sum(W1 * W1) + sum(W2 * W2)):
weights only, no 1/2 factor, the biases are not regularised.

Conventions the grader holds every function here to:
- results keep the dtype and the device of the inputs (float32 in, float32 out, on the inputs' device;
  computing in float64 inside and converting back is fine);
- the inputs are left unchanged, except that `nn_train` updates the parameters in params, which is its job;
- the loss and the gradients are compared with autograd's, to a relative error of 1e-8 in float64 and 1e-4
  in float32; the gradient of the ReLU at exactly 0 may be taken as 0 or 1;
- find_best_net gets the course's shapes (3x32x32 images as 3072 features, 10 classes), and its best net
  must reach 50% on the test split of CIFAR-10 (88% on the offline digits);
- the grader caps the training find_best_net asks for, as `TwoLayerNet.train` runs it: per call at most
  150 iterations, in batches of at most 200 examples, and 15 s on the offline digits (5000 iterations of
  batch 1000 and 60 s on CIFAR-10); the feedback says what was capped.

Rules the grader enforces in this file (see `grader list --rules`):
- nn_forward_pass may not use:
  - torch.nn.functional.relu, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_,
    torch.nn.ReLU: nn_forward_pass writes its ReLU itself (clamp, a mask such as x * (x > 0), or
    torch.where are fine).
  - torch.nn.functional.linear, torch.nn.Linear: nn_forward_pass writes its linear layers itself (X
    @ W1 + b1).
- nn_forward_backward may not use:
  - torch.nn.functional.cross_entropy, torch.nn.functional.nll_loss, torch.nn.CrossEntropyLoss,
    torch.nn.NLLLoss: it computes the softmax (cross-entropy) loss you are asked to write.
  - torch.nn.functional.softmax, torch.nn.functional.log_softmax, torch.nn.Softmax,
    torch.nn.LogSoftmax: it computes the softmax probabilities (or their logarithms) you are asked
    to compute; torch.softmax and x.softmax are the same operation.
- nn_train, find_best_net may not use:
  - torch.optim: the SGD step is what you are asked to write.
- nn_forward_pass, nn_forward_backward: no loops (for, while, comprehensions, map, filter,
  functools.reduce, itertools or recursion; loops in the helpers it calls count too).
- every function: no autograd (requires_grad, .backward(), torch.autograd, torch.func): gradients
  are computed by hand.
- the file may use: only the modules torch, math, random, statistics, typing, abc, enum,
  collections, functools, itertools, dataclasses, a2_linear, dlcv (a use of another module holds
  back every function of the file; an import that nothing uses only earns a warning).

TwoLayerNet is given (in `classifiers.py`, kept by the kit) and imported here.
Your code goes where a TODO comment asks for it; leave the rest of the file as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from a2_linear.classifiers import TwoLayerNet  # given code, kept by the kit
from a2_linear.linear_classifier import sample_batch  # nn_train draws its minibatches with your sample_batch

Params = dict[str, torch.Tensor]  # 'W1' (D, H), 'b1' (H,), 'W2' (H, C), 'b2' (C,)
LossFunction = Callable[..., Any]  # like nn_forward_backward: scores without labels, (loss, grads) with them
PredictFunction = Callable[[Params, LossFunction, torch.Tensor], torch.Tensor]  # like nn_predict


def nn_forward_pass(params: Params, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """
    The forward pass of the network: the class scores of every example, and the hidden layer.

    Inputs:
    - params: dict with 'W1' (D, H), 'b1' (H,), 'W2' (H, C), 'b2' (C,), same dtype and device as X.
    - X: tensor of shape (N, D), the input data.

    Returns a tuple of:
    - scores: tensor of shape (N, C); scores[i, c] is the score of class c for X[i].
    - hidden: tensor of shape (N, H), the hidden layer's values after the ReLU.
    """
    W1, b1 = params["W1"], params["b1"]
    W2, b2 = params["W2"], params["b2"]

    hidden = None
    scores = None
    # TODO: Compute the hidden layer (the first linear layer followed by a ReLU) and from it the scores
    # (the second linear layer). Write the ReLU yourself (clamp, a mask or torch.where) and the linear
    # layers with matrix products: torch.relu, F.relu and F.linear are not allowed (see the rules above).
    # BEGIN SOLUTION
    hidden = (X @ W1 + b1).clamp(min=0)  # (N, H)
    scores = hidden @ W2 + b2  # (N, C)
    # END SOLUTION
    return scores, hidden


def nn_forward_backward(
    params: Params, X: torch.Tensor, y: torch.Tensor | None = None, reg: float = 0.0
) -> torch.Tensor | tuple[torch.Tensor, Params]:
    """
    The network's scores; or, given labels, its loss and the gradients of the loss.

    The loss is the mean softmax loss over the N examples plus reg * (sum(W1 * W1) + sum(W2 * W2)).

    Inputs:
    - params: dict with 'W1' (D, H), 'b1' (H,), 'W2' (H, C), 'b2' (C,), same dtype and device as X.
    - X: tensor of shape (N, D), the input data.
    - y: int64 tensor of shape (N,), the labels, 0 <= y[i] < C; or None.
    - reg: the regularisation strength, a float >= 0.

    Returns:
    - if y is None: scores, a tensor of shape (N, C).
    - otherwise a tuple of:
      - loss: 0-dim tensor, the loss on this batch.
      - grads: dict with the same keys as params; grads[k] is the gradient of the loss with respect to
        params[k], of the same shape.
    """
    W1, W2 = params["W1"], params["W2"]
    N = X.shape[0]

    scores, hidden = nn_forward_pass(params, X)  # (N, C), (N, H)
    if y is None:
        return scores

    loss = None
    # TODO: Compute the loss: the mean softmax loss of the scores (numerically stable: shift each row of
    # scores by its maximum) plus the L2 regulariser of W1 and W2.
    # BEGIN SOLUTION
    rows = torch.arange(N, device=X.device)  # (N,)
    shifted = scores - scores.max(dim=1, keepdim=True).values  # (N, C), each row's largest is 0
    log_normalisers = torch.log(torch.exp(shifted).sum(dim=1))  # (N,)
    loss = (log_normalisers - shifted[rows, y]).mean() + reg * (torch.sum(W1 * W1) + torch.sum(W2 * W2))
    # END SOLUTION

    grads = {}
    # TODO: Backpropagate: compute the gradient of the loss with respect to every parameter and store it
    # in grads under the parameter's name ('W1', 'b1', 'W2', 'b2'). You may reuse values from above.
    # BEGIN SOLUTION
    dscores = torch.exp(shifted - log_normalisers[:, None])  # (N, C), the probabilities
    dscores[rows, y] -= 1
    dscores /= N  # (N, C), d loss / d scores
    grads["W2"] = hidden.t() @ dscores + 2 * reg * W2  # (H, C)
    grads["b2"] = dscores.sum(dim=0)  # (C,)
    dhidden = dscores @ W2.t()  # (N, H)
    dhidden[hidden <= 0] = 0  # the ReLU passes gradient only where it was active
    grads["W1"] = X.t() @ dhidden + 2 * reg * W1  # (D, H)
    grads["b1"] = dhidden.sum(dim=0)  # (H,)
    # END SOLUTION
    return loss, grads


def nn_train(
    params: Params,
    loss_func: LossFunction,
    pred_func: PredictFunction,
    X: torch.Tensor,
    y: torch.Tensor,
    X_val: torch.Tensor,
    y_val: torch.Tensor,
    learning_rate: float = 1e-3,
    learning_rate_decay: float = 0.95,
    reg: float = 5e-6,
    num_iters: int = 100,
    batch_size: int = 200,
    verbose: bool = False,
) -> dict[str, list[float]]:
    """
    Train a network by stochastic gradient descent (SGD), updating the parameters in params: in place
    (params[k] -= ...) or by storing new tensors under the same keys (params[k] = params[k] - ...).

    One epoch is iterations_per_epoch = max(N // batch_size, 1) iterations. At the end of every epoch the
    accuracy on the current minibatch and on the validation set are recorded, and then the learning rate
    is multiplied by learning_rate_decay. (The loop below ends an epoch when (it + 1) % iterations_per_epoch
    == 0; the course's original loop, it % iterations_per_epoch == 0, is accepted too.)

    Inputs:
    - params: dict with 'W1' (D, H), 'b1' (H,), 'W2' (H, C), 'b2' (C,), same dtype and device as X.
    - loss_func: called as loss_func(params, X_batch, y=y_batch, reg=reg) -> (loss, grads), e.g.
      `nn_forward_backward`.
    - pred_func: called as pred_func(params, loss_func, X) -> int64 labels (N,), e.g. `nn_predict`.
    - X: tensor of shape (N, D), the training data.
    - y: int64 tensor of shape (N,), the training labels, 0 <= y[i] < C.
    - X_val: tensor of shape (N_val, D), the validation data.
    - y_val: int64 tensor of shape (N_val,), the validation labels.
    - learning_rate: the initial SGD step size.
    - learning_rate_decay: the factor applied to the learning rate after every epoch.
    - reg: the regularisation strength.
    - num_iters: the number of SGD steps.
    - batch_size: the number of examples per minibatch (drawn with replacement, see `sample_batch`).
    - verbose: if True, print the loss every 100 iterations.

    Returns a dict with:
    - 'loss_history': list of num_iters Python floats, the minibatch loss at each iteration.
    - 'train_acc_history': list of Python floats in [0, 1], one per completed epoch, the accuracy on the
      last minibatch of that epoch.
    - 'val_acc_history': list of Python floats in [0, 1], one per completed epoch, the validation accuracy.
    """
    num_train = X.shape[0]
    iterations_per_epoch = max(num_train // batch_size, 1)

    loss_history = []
    train_acc_history = []
    val_acc_history = []
    for it in range(num_iters):
        X_batch, y_batch = sample_batch(X, y, num_train, batch_size)  # (batch_size, D), (batch_size,)
        loss, grads = loss_func(params, X_batch, y=y_batch, reg=reg)
        loss_history.append(float(loss))

        # TODO: Take one SGD step: move every parameter in params against its gradient in grads, scaled
        # by learning_rate (in place, or by storing the new tensors in params).
        # BEGIN SOLUTION
        for name in params:
            params[name] -= learning_rate * grads[name]
        # END SOLUTION

        if verbose and it % 100 == 0:
            print(f"iteration {it} / {num_iters}: loss {float(loss):f}")

        if (it + 1) % iterations_per_epoch == 0:  # the end of an epoch
            y_batch_pred = pred_func(params, loss_func, X_batch)  # (batch_size,)
            train_acc_history.append((y_batch_pred == y_batch).double().mean().item())
            y_val_pred = pred_func(params, loss_func, X_val)  # (N_val,)
            val_acc_history.append((y_val_pred == y_val).double().mean().item())
            learning_rate *= learning_rate_decay

    return {
        "loss_history": loss_history,
        "train_acc_history": train_acc_history,
        "val_acc_history": val_acc_history,
    }


def nn_predict(params: Params, loss_func: LossFunction, X: torch.Tensor) -> torch.Tensor:
    """
    Predict the label of every row of X: the class with the highest score.

    Inputs:
    - params: dict with 'W1' (D, H), 'b1' (H,), 'W2' (H, C), 'b2' (C,), same dtype and device as X.
    - loss_func: called as loss_func(params, X) -> scores (N, C), e.g. `nn_forward_backward`.
    - X: tensor of shape (N, D), the data to classify.

    Returns:
    - y_pred: int64 tensor of shape (N,) on X's device; y_pred[i] in [0, C) is the class predicted for X[i].
    """
    y_pred = None
    # TODO: Get the scores from loss_func (without labels) and take, for each row, the index of the
    # highest score.
    # BEGIN SOLUTION
    scores = loss_func(params, X)  # (N, C)
    y_pred = scores.argmax(dim=1)  # (N,)
    # END SOLUTION
    return y_pred


def nn_get_search_params() -> tuple[list[float], list[int], list[float], list[float]]:
    """
    The hyperparameters for `find_best_net` to try: every combination of the four lists.

    Returns a tuple of:
    - learning_rates: list of initial learning rates.
    - hidden_sizes: list of numbers of hidden units H.
    - regularization_strengths: list of regularisation strengths.
    - learning_rate_decays: list of learning-rate decays (factors per epoch, in (0, 1]).
    There must be fewer than 256 combinations in all.
    """
    learning_rates = []
    hidden_sizes = []
    regularization_strengths = []
    learning_rate_decays = []
    # TODO: Choose the values to try. Training takes time: start with a few coarse values, then narrow
    # the search around the best ones.
    # BEGIN SOLUTION
    learning_rates = [3e-1, 1e0]
    hidden_sizes = [128]
    regularization_strengths = [1e-4, 1e-3]
    learning_rate_decays = [0.95]
    # END SOLUTION
    return learning_rates, hidden_sizes, regularization_strengths, learning_rate_decays


def find_best_net(
    data_dict: dict, get_param_set_fn: Callable[[], tuple[list[float], list[int], list[float], list[float]]]
) -> tuple[TwoLayerNet, dict[str, list[float]], float]:
    """
    Train a TwoLayerNet for every combination of hyperparameters and keep the best on the validation set.

    Inputs:
    - data_dict: dict with 'X_train' (N_train, D), 'y_train' (N_train,), 'X_val' (N_val, D) and
      'y_val' (N_val,), as returned by `dlcv.preprocess_cifar10()`: the course's images, D = 3 * 32 * 32
      = 3072 features, C = 10 classes (the grader keeps these shapes). Build the nets with D inputs and C
      outputs, in the dtype and on the device of X_train.
    - get_param_set_fn: a function returning (learning_rates, hidden_sizes, regularization_strengths,
      learning_rate_decays), such as `nn_get_search_params`.

    Train each net with its `train` method. While grading, the grader caps what each call trains (see the
    conventions above: asking for more trains no more), so choose num_iters and batch_size for your own runs.

    Returns a tuple of:
    - best_net: the TwoLayerNet with the highest validation accuracy.
    - best_stat: the dict its train method returned (see `nn_train`).
    - best_val_acc: Python float in [0, 1], best_net's accuracy on the whole validation set.
    """
    best_net = None
    best_stat = None
    best_val_acc = 0.0
    # TODO: For every combination of the values from get_param_set_fn, build a TwoLayerNet of the right
    # sizes (on X_train's dtype and device), train it on the training set (choose num_iters and
    # batch_size), measure its validation accuracy, and keep the best net, its stats and its accuracy.
    # BEGIN SOLUTION
    X_train, y_train = data_dict["X_train"], data_dict["y_train"]
    X_val, y_val = data_dict["X_val"], data_dict["y_val"]
    D = X_train.shape[1]
    C = int(y_train.max().item()) + 1
    learning_rates, hidden_sizes, regularization_strengths, learning_rate_decays = get_param_set_fn()
    for lr in learning_rates:
        for hidden_size in hidden_sizes:
            for reg in regularization_strengths:
                for decay in learning_rate_decays:
                    net = TwoLayerNet(D, hidden_size, C, dtype=X_train.dtype, device=X_train.device)
                    settings = {"learning_rate": lr, "learning_rate_decay": decay, "reg": reg}
                    stat = net.train(X_train, y_train, X_val, y_val, num_iters=1000, batch_size=200, **settings)
                    val_acc = (net.predict(X_val) == y_val).double().mean().item()
                    if best_net is None or val_acc > best_val_acc:
                        best_net, best_stat, best_val_acc = net, stat, val_acc
    # END SOLUTION
    return best_net, best_stat, best_val_acc
