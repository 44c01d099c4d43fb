"""
Linear classifiers: a multiclass support vector machine (SVM) and a softmax classifier.

A linear classifier scores the C classes of an example x (a row of D numbers) by one matrix product,
scores = x W, with a weight matrix W of shape (D, C), and predicts the class of the highest score. The
bias is folded into W by the "bias trick": every row of X ends with a constant 1 (see
`dlcv.preprocess_cifar10(bias_trick=True)`), so the last row of W acts as the bias.

Conventions the grader holds every function here to:
- the data loss is averaged over the N examples; the L2 regulariser is reg * sum(W * W) (no 1/2 factor),
  so its gradient is 2 * reg * W;
- results keep the dtype and the device of the inputs: float32 inputs give a float32 loss and dW, on the
  inputs' device (create new tensors with `torch.zeros_like` and friends, or with `dtype=` and `device=`
  taken from an input; computing in float64 inside and converting back is fine);
- the inputs are left unchanged (train_linear_classifier may update W in place: see its docstring);
- losses and gradients are compared with PyTorch's own, to a relative error of 1e-8 in float64 and 1e-4
  in float32; the checks use float64 and float32 inputs, and scores large enough to overflow exp();
- accuracy targets on the test split: train_linear_classifier 30% on CIFAR-10 (88% on the offline
  digits), and the best combination of each search 37% on CIFAR-10 (88% on the digits).

Rules the grader enforces in this file (see `grader list --rules`):
- svm_loss_naive, svm_loss_vectorized may not use:
  - torch.nn.functional.multi_margin_loss, torch.nn.functional.multilabel_margin_loss,
    torch.nn.MultiMarginLoss, torch.nn.MultiLabelMarginLoss: it computes the multiclass SVM loss you
    are asked to write.
- softmax_loss_naive, softmax_loss_vectorized may not use:
  - torch.nn.functional.cross_entropy, torch.nn.functional.nll_loss, torch.nn.CrossEntropyLoss,
    torch.nn.NLLLoss: it computes the softmax (cross-entropy) loss you are asked to write.
  - torch.nn.functional.softmax, torch.nn.functional.log_softmax, torch.nn.Softmax,
    torch.nn.LogSoftmax: it computes the softmax probabilities (or their logarithms) you are asked
    to compute; torch.softmax and x.softmax are the same operation.
- train_linear_classifier may not use:
  - torch.optim: the SGD step is what you are asked to write.
- svm_loss_vectorized, softmax_loss_vectorized: no loops (for, while, comprehensions, map, filter,
  functools.reduce, itertools or recursion; loops in the helpers it calls count too).
- every function: no autograd (requires_grad, .backward(), torch.autograd, torch.func): gradients
  are computed by hand.
- the file may use: only the modules torch, math, random, statistics, typing, abc, enum,
  collections, functools, itertools, dataclasses, a2_linear, dlcv (a use of another module holds
  back every function of the file; an import that nothing uses only earns a warning).

LinearClassifier, LinearSVM and Softmax are given (in `classifiers.py`, kept by the kit) and imported here.
Your code goes where a TODO comment asks for it; leave the rest of the file as it is.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from a2_linear.classifiers import LinearClassifier, LinearSVM, Softmax  # noqa: F401 (given code, kept by the kit)

LossFunction = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, float], tuple[torch.Tensor, torch.Tensor]]


# ---------------------------------------------------------------------------------------------------------
# The multiclass SVM loss


def svm_loss_naive(W: torch.Tensor, X: torch.Tensor, y: torch.Tensor, reg: float) -> tuple[torch.Tensor, torch.Tensor]:
    """
    The multiclass SVM loss and its gradient, computed with loops.

    For example i with scores s = X[i] W, the loss is the sum over the wrong classes j != y[i] of the
    hinge max(0, s[j] - s[y[i]] + 1): each wrong class should score at least 1 below the correct one.
    The total loss is the mean of these over the N examples plus reg * sum(W * W).

    Where a hinge is exactly 0 at its kink, take its gradient to be 0.

    Inputs:
    - W: tensor of shape (D, C), the weights.
    - X: tensor of shape (N, D), a minibatch of data, same dtype and device as W.
    - y: int64 tensor of shape (N,), the labels; y[i] = c means X[i] has label c, 0 <= c < C.
    - reg: the regularisation strength, a float >= 0.

    Returns a tuple of:
    - loss: 0-dim tensor, dtype and device of W.
    - dW: tensor of shape (D, C), the gradient of the loss with respect to W.
    """
    N, C = X.shape[0], W.shape[1]
    loss = torch.zeros((), dtype=W.dtype, device=W.device)
    dW = torch.zeros_like(W)  # (D, C)
    # TODO: Loop over the examples and, for each, over the wrong classes: add every positive hinge to
    # the loss and its gradient with respect to W to dW. Then average both over N and add the
    # regulariser's loss and gradient. Loops are allowed here.
    # BEGIN SOLUTION
    for i in range(N):
        scores = X[i] @ W  # (C,)
        correct_class_score = scores[y[i]]
        for j in range(C):
            if j == y[i]:
                continue
            margin = scores[j] - correct_class_score + 1
            if margin > 0:
                loss = loss + margin
                dW[:, j] += X[i]  # d margin / d W[:, j]
                dW[:, y[i]] -= X[i]  # d margin / d W[:, y[i]]
    loss = loss / N + reg * torch.sum(W * W)
    dW = dW / N + 2 * reg * W
    # END SOLUTION
    return loss, dW


def svm_loss_vectorized(
    W: torch.Tensor, X: torch.Tensor, y: torch.Tensor, reg: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """
    The multiclass SVM loss and its gradient, without loops.

    Same inputs and outputs as `svm_loss_naive`, and the same results up to floating-point rounding.

    Inputs:
    - W: tensor of shape (D, C), the weights.
    - X: tensor of shape (N, D), a minibatch of data, same dtype and device as W.
    - y: int64 tensor of shape (N,), the labels, 0 <= y[i] < C.
    - reg: the regularisation strength, a float >= 0.

    Returns a tuple of:
    - loss: 0-dim tensor, dtype and device of W.
    - dW: tensor of shape (D, C), the gradient of the loss with respect to W.
    """
    N = X.shape[0]
    loss = torch.zeros((), dtype=W.dtype, device=W.device)
    dW = torch.zeros_like(W)  # (D, C)
    # TODO: Compute all the scores with one matrix product, then all the hinges max(0, s_j - s_{y_i} + 1)
    # at once, with the correct classes' hinges set to 0; the loss is their mean over examples plus the
    # regulariser. No loops.
    # BEGIN SOLUTION
    rows = torch.arange(N, device=X.device)  # (N,)
    scores = X @ W  # (N, C)
    correct_class_scores = scores[rows, y]  # (N,)
    margins = (scores - correct_class_scores[:, None] + 1).clamp(min=0)  # (N, C)
    margins[rows, y] = 0
    loss = margins.sum() / N + reg * torch.sum(W * W)
    # END SOLUTION

    # TODO: Compute the gradient dW of the same loss without loops; you may reuse the values you
    # computed for the loss above.
    # BEGIN SOLUTION
    dscores = torch.zeros_like(scores)  # (N, C), d loss / d scores, before the 1/N
    dscores[margins > 0] = 1
    dscores[rows, y] = -dscores.sum(dim=1)  # the correct class loses one X[i] per positive hinge
    dW = X.t() @ dscores / N + 2 * reg * W  # (D, C)
    # END SOLUTION
    return loss, dW


# ---------------------------------------------------------------------------------------------------------
# The softmax loss


def softmax_loss_naive(
    W: torch.Tensor, X: torch.Tensor, y: torch.Tensor, reg: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """
    The softmax (cross-entropy) loss and its gradient, computed with loops.

    For example i with scores s = X[i] W, the class probabilities are p[j] = exp(s[j]) / sum_k exp(s[k])
    and the loss is -log p[y[i]]. The total loss is the mean over the N examples plus reg * sum(W * W).

    Numerical stability: exp overflows for large scores. Subtracting the largest score of a row from all
    its scores first does not change p, and keeps every exponent <= 0.

    Inputs:
    - W: tensor of shape (D, C), the weights.
    - X: tensor of shape (N, D), a minibatch of data, same dtype and device as W.
    - y: int64 tensor of shape (N,), the labels, 0 <= y[i] < C.
    - reg: the regularisation strength, a float >= 0.

    Returns a tuple of:
    - loss: 0-dim tensor, dtype and device of W.
    - dW: tensor of shape (D, C), the gradient of the loss with respect to W.
    """
    N, C = X.shape[0], W.shape[1]
    loss = torch.zeros((), dtype=W.dtype, device=W.device)
    dW = torch.zeros_like(W)  # (D, C)
    # TODO: Loop over the examples: compute each one's shifted scores, its loss -log p[y[i]], and add
    # its gradient with respect to W to dW. Then average both over N and add the regulariser's loss and
    # gradient. Loops are allowed here.
    # BEGIN SOLUTION
    for i in range(N):
        scores = X[i] @ W  # (C,)
        scores = scores - scores.max()  # the largest is now 0: exp cannot overflow
        log_normaliser = torch.log(torch.exp(scores).sum())
        loss = loss + log_normaliser - scores[y[i]]  # -log p[y[i]]
        probs = torch.exp(scores - log_normaliser)  # (C,)
        for j in range(C):
            dW[:, j] += probs[j] * X[i]  # d log_normaliser / d W[:, j]
        dW[:, y[i]] -= X[i]  # d (-scores[y[i]]) / d W[:, y[i]]
    loss = loss / N + reg * torch.sum(W * W)
    dW = dW / N + 2 * reg * W
    # END SOLUTION
    return loss, dW


def softmax_loss_vectorized(
    W: torch.Tensor, X: torch.Tensor, y: torch.Tensor, reg: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """
    The softmax (cross-entropy) loss and its gradient, without loops.

    Same inputs and outputs as `softmax_loss_naive`, and the same results up to floating-point rounding.
    Shift each row of scores by its maximum for numerical stability.

    Inputs:
    - W: tensor of shape (D, C), the weights.
    - X: tensor of shape (N, D), a minibatch of data, same dtype and device as W.
    - y: int64 tensor of shape (N,), the labels, 0 <= y[i] < C.
    - reg: the regularisation strength, a float >= 0.

    Returns a tuple of:
    - loss: 0-dim tensor, dtype and device of W.
    - dW: tensor of shape (D, C), the gradient of the loss with respect to W.
    """
    N = X.shape[0]
    loss = torch.zeros((), dtype=W.dtype, device=W.device)
    dW = torch.zeros_like(W)  # (D, C)
    # TODO: Compute all the scores with one matrix product and shift each row by its maximum, then the
    # mean loss -log p[y[i]] plus the regulariser, and its gradient dW. No loops.
    # BEGIN SOLUTION
    rows = torch.arange(N, device=X.device)  # (N,)
    scores = X @ W  # (N, C)
    scores = scores - scores.max(dim=1, keepdim=True).values  # (N, C), each row's largest is 0
    log_normalisers = torch.log(torch.exp(scores).sum(dim=1))  # (N,)
    loss = (log_normalisers - scores[rows, y]).mean() + reg * torch.sum(W * W)
    dscores = torch.exp(scores - log_normalisers[:, None])  # (N, C), the probabilities P
    dscores[rows, y] -= 1  # P - Y
    dW = X.t() @ dscores / N + 2 * reg * W  # (D, C)
    # END SOLUTION
    return loss, dW


# ---------------------------------------------------------------------------------------------------------
# Training and prediction


def sample_batch(
    X: torch.Tensor, y: torch.Tensor, num_train: int, batch_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """
    Draw a random minibatch of batch_size examples from the first num_train rows, with replacement
    (the same example may be drawn more than once).

    Inputs:
    - X: tensor of shape (N, D), the data, N >= num_train.
    - y: int64 tensor of shape (N,), the labels, on X's device.
    - num_train: the examples X[0], ..., X[num_train - 1] are the ones to draw from.
    - batch_size: the number of examples to draw.

    Returns a tuple of:
    - X_batch: tensor of shape (batch_size, D), the drawn rows of X.
    - y_batch: int64 tensor of shape (batch_size,), their labels: y_batch[k] is the label of X_batch[k].
    """
    X_batch = None
    y_batch = None
    # TODO: Draw batch_size random indices in [0, num_train) with torch.randint, on X's device, and use
    # them to pick the rows of X and the labels of y.
    # BEGIN SOLUTION
    indices = torch.randint(num_train, (batch_size,), device=X.device)  # (batch_size,)
    X_batch = X[indices]  # (batch_size, D)
    y_batch = y[indices]  # (batch_size,)
    # END SOLUTION
    return X_batch, y_batch


def train_linear_classifier(
    loss_func: LossFunction,
    W: torch.Tensor | None,
    X: torch.Tensor,
    y: torch.Tensor,
    learning_rate: float = 1e-3,
    reg: float = 1e-5,
    num_iters: int = 100,
    batch_size: int = 200,
    verbose: bool = False,
) -> tuple[torch.Tensor, list[float]]:
    """
    Train a linear classifier by stochastic gradient descent (SGD).

    Each iteration draws a minibatch with `sample_batch`, computes the loss and its gradient on it, and
    takes one step W <- W - learning_rate * dW. The step may update W in place (W -= learning_rate * dW,
    as the course's code does) or build a new tensor (W = W - learning_rate * dW): the W returned is what
    counts. X and y are left unchanged.

    Inputs:
    - loss_func: the loss to minimise, called as loss_func(W, X_batch, y_batch, reg) -> (loss, dW), e.g.
      `svm_loss_vectorized` or `softmax_loss_vectorized`.
    - W: tensor of shape (D, C), the initial weights; None means start from 1e-6 * randn(D, C) with
      C = max(y) + 1, on X's device and in X's dtype.
    - X: tensor of shape (N, D), the training data.
    - y: int64 tensor of shape (N,), labels in [0, C).
    - learning_rate: the SGD step size.
    - reg: the regularisation strength.
    - num_iters: the number of SGD steps.
    - batch_size: the number of examples per minibatch.
    - verbose: if True, print the loss every 100 iterations.

    Returns a tuple of:
    - W: tensor of shape (D, C), the trained weights.
    - loss_history: list of num_iters Python floats, the minibatch loss at each iteration.
    """
    num_train, dim = X.shape
    if W is None:
        num_classes = int(y.max().item()) + 1  # labels run 0, ..., C - 1
        W = 1e-6 * torch.randn(dim, num_classes, device=X.device, dtype=X.dtype)  # (D, C)

    loss_history = []
    for it in range(num_iters):
        X_batch, y_batch = sample_batch(X, y, num_train, batch_size)  # (batch_size, D), (batch_size,)
        loss, grad = loss_func(W, X_batch, y_batch, reg)
        loss_history.append(float(loss))

        # TODO: Take one gradient descent step: move W against the gradient by learning_rate times it
        # (in place or as a new tensor, either is fine).
        # BEGIN SOLUTION
        W = W - learning_rate * grad  # (D, C)
        # END SOLUTION

        if verbose and it % 100 == 0:
            print(f"iteration {it} / {num_iters}: loss {float(loss):f}")
    return W, loss_history


def predict_linear_classifier(W: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """
    Predict the label of every row of X: the class with the highest score.

    Inputs:
    - W: tensor of shape (D, C), trained weights.
    - X: tensor of shape (N, D), the data, same dtype and device as W.

    Returns:
    - y_pred: int64 tensor of shape (N,) on X's device; y_pred[i] in [0, C) is the class predicted for X[i].
    """
    N = X.shape[0]
    y_pred = torch.zeros(N, dtype=torch.int64, device=X.device)  # (N,)
    # TODO: Compute the scores and take, for each row, the index of the highest score.
    # BEGIN SOLUTION
    y_pred = (X @ W).argmax(dim=1)  # (N,)
    # END SOLUTION
    return y_pred


# ---------------------------------------------------------------------------------------------------------
# Choosing hyperparameters


def svm_get_search_params() -> tuple[list[float], list[float]]:
    """
    The hyperparameters to try for the SVM: every learning rate with every regularisation strength.

    Returns a tuple of:
    - learning_rates: list of at least 2 learning rates.
    - regularization_strengths: list of at least 2 regularisation strengths.
    There must be fewer than 25 combinations (len(learning_rates) * len(regularization_strengths)).
    """
    learning_rates = []
    regularization_strengths = []
    # TODO: Choose the values to try. Start with a coarse search over several orders of magnitude, then
    # narrow it around the best values.
    # BEGIN SOLUTION
    learning_rates = [1e-3, 3e-3, 1e-2]
    regularization_strengths = [1e-3, 1e-2, 1e-1]
    # END SOLUTION
    return learning_rates, regularization_strengths


def softmax_get_search_params() -> tuple[list[float], list[float]]:
    """
    The hyperparameters to try for the softmax classifier: every learning rate with every
    regularisation strength.

    Returns a tuple of:
    - learning_rates: list of at least 2 learning rates.
    - regularization_strengths: list of at least 2 regularisation strengths.
    There must be fewer than 25 combinations (len(learning_rates) * len(regularization_strengths)).
    """
    learning_rates = []
    regularization_strengths = []
    # TODO: Choose the values to try. Start with a coarse search over several orders of magnitude, then
    # narrow it around the best values.
    # BEGIN SOLUTION
    learning_rates = [1e-2, 3e-2, 1e-1]
    regularization_strengths = [1e-3, 1e-2, 1e-1]
    # END SOLUTION
    return learning_rates, regularization_strengths


def test_one_param_set(
    cls: LinearClassifier, data_dict: dict, lr: float, reg: float, num_iters: int = 2000
) -> tuple[LinearClassifier, float, float]:
    """
    Train a classifier with one learning rate and regularisation strength, and measure its accuracy.

    Inputs:
    - cls: a LinearSVM or Softmax instance (untrained, or trained further from its current weights).
    - data_dict: dict with 'X_train' (N_train, D), 'y_train' (N_train,), 'X_val' (N_val, D) and
      'y_val' (N_val,), as returned by `dlcv.preprocess_cifar10(bias_trick=True)`.
    - lr: the learning rate.
    - reg: the regularisation strength.
    - num_iters: the number of SGD iterations (use a small number, say 100, while you debug).

    Train with the num_iters passed in: while grading, the grader caps what cls.train trains (at most twice
    the num_iters it passes in, in batches of at most 400), and the feedback says so.

    Returns a tuple of:
    - cls: the same instance, trained.
    - train_acc: Python float in [0, 1], the fraction of training examples it classifies correctly.
    - val_acc: Python float in [0, 1], the same on the validation set.
    """
    train_acc = 0.0
    val_acc = 0.0
    # TODO: Train cls on the training set with the given learning rate, regularisation strength and
    # number of iterations (its train method), then compute its accuracy on the training and the
    # validation sets as fractions.
    # BEGIN SOLUTION
    cls.train(data_dict["X_train"], data_dict["y_train"], learning_rate=lr, reg=reg, num_iters=num_iters)
    y_train_pred = cls.predict(data_dict["X_train"])  # (N_train,)
    train_acc = (y_train_pred == data_dict["y_train"]).double().mean().item()
    y_val_pred = cls.predict(data_dict["X_val"])  # (N_val,)
    val_acc = (y_val_pred == data_dict["y_val"]).double().mean().item()
    # END SOLUTION
    return cls, train_acc, val_acc
