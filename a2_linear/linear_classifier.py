"""
Linear classifiers: a multiclass support vector machine (SVM) and a softmax classifier.

A linear classifier scores the C classes of an example x (a row of D numbers) by one matrix product,
scores = x W, with a weight matrix W of shape (D, C), and predicts the class of the highest score. The
bias is folded into W by the "bias trick": every row of X ends with a constant 1 (see
`dlcv.preprocess_cifar10(bias_trick=True)`), so the last row of W acts as the bias.

Conventions for every loss here:
- the data loss is averaged over the N examples; the L2 regulariser is reg * sum(W * W) (no 1/2 factor),
  so its gradient is 2 * reg * W;
- gradients are worked out by hand: no autograd (no `.backward()`, no `torch.autograd`, no `requires_grad`);
- keep the device and dtype of the inputs (create new tensors with `device=` and `dtype=` taken from an
  input, or with `torch.zeros_like` and friends; never call `.to()`, `.cuda()` or `.cpu()`), and do not
  modify the inputs.

Your code goes where a TODO comment asks for it; leave the rest of the file as it is.
"""

from __future__ import annotations

from typing import Callable

import torch

LossFunction = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, float], tuple[torch.Tensor, torch.Tensor]]


class LinearClassifier:
    """
    (Given.) The common part of the linear classifiers: training, prediction, saving and loading.

    A subclass says which loss it minimises by defining `loss(W, X_batch, y_batch, reg) -> (loss, dW)`.
    The weights live in self.W, a tensor of shape (D, C), or None before the first call to `train`.
    """

    def __init__(self):
        self.W: torch.Tensor | None = None

    def train(
        self,
        X_train: torch.Tensor,
        y_train: torch.Tensor,
        learning_rate: float = 1e-3,
        reg: float = 1e-5,
        num_iters: int = 100,
        batch_size: int = 200,
        verbose: bool = False,
    ) -> list[float]:
        """
        Train self.W by stochastic gradient descent (see `train_linear_classifier`). A second call goes on
        from the weights the first one left.

        Inputs:
        - X_train: tensor of shape (N, D), the training data.
        - y_train: int64 tensor of shape (N,), labels in [0, C).
        - learning_rate, reg, num_iters, batch_size, verbose: as in `train_linear_classifier`.

        Returns:
        - loss_history: list of num_iters floats, the loss at each iteration.
        """
        self.W, loss_history = train_linear_classifier(
            self.loss, self.W, X_train, y_train, learning_rate, reg, num_iters, batch_size, verbose
        )
        return loss_history

    def predict(self, X: torch.Tensor) -> torch.Tensor:
        """
        Predict a label for every row of X.

        Inputs:
        - X: tensor of shape (N, D).

        Returns:
        - y_pred: int64 tensor of shape (N,), the predicted labels.
        """
        return predict_linear_classifier(self.W, X)

    def loss(
        self, W: torch.Tensor, X_batch: torch.Tensor, y_batch: torch.Tensor, reg: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """
        The loss and its gradient; subclasses define it.

        Inputs:
        - W: tensor of shape (D, C), the weights.
        - X_batch: tensor of shape (N, D), a minibatch.
        - y_batch: int64 tensor of shape (N,), its labels.
        - reg: the regularisation strength.

        Returns a tuple of:
        - loss: 0-dim tensor, the loss.
        - dW: tensor of shape (D, C), the gradient of the loss with respect to W.
        """
        raise NotImplementedError(f"{type(self).__name__} must define loss(W, X_batch, y_batch, reg)")

    def save(self, path: str) -> None:
        """Save the weights to the file at path."""
        torch.save({"W": self.W}, path)
        print(f"Saved in {path}")

    def load(self, path: str) -> None:
        """Load weights saved by `save` from the file at path (onto the device of the current weights, else the CPU)."""
        device = self.W.device if self.W is not None else "cpu"
        self.W = torch.load(path, map_location=device)["W"]
        print(f"Loaded checkpoint file: {path}")


class LinearSVM(LinearClassifier):
    """(Given.) A linear classifier trained with the multiclass SVM (hinge) loss."""

    def loss(
        self, W: torch.Tensor, X_batch: torch.Tensor, y_batch: torch.Tensor, reg: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return svm_loss_vectorized(W, X_batch, y_batch, reg)


class Softmax(LinearClassifier):
    """(Given.) A linear classifier trained with the softmax (cross-entropy) loss."""

    def loss(
        self, W: torch.Tensor, X_batch: torch.Tensor, y_batch: torch.Tensor, reg: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return softmax_loss_vectorized(W, X_batch, y_batch, reg)


# ---------------------------------------------------------------------------------------------------------
# The multiclass SVM loss


def svm_loss_naive(
    W: torch.Tensor, X: torch.Tensor, y: torch.Tensor, reg: float
) -> tuple[torch.Tensor, torch.Tensor]:
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
    N, D = X.shape
    C = W.shape[1]
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
    N, D = X.shape
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
    N, D = X.shape
    C = W.shape[1]
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
    N, D = X.shape
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
    takes one step W <- W - learning_rate * dW. The W passed in is left unchanged.

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

        # TODO: Take one gradient descent step: make W the weights moved against the gradient by
        # learning_rate times it. Build a new tensor (do not change the W passed in).
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
