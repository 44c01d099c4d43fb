"""
Given classes for A2 (not part of the assignment; not taken from a submission).

LinearClassifier, LinearSVM and Softmax hold the weights of a linear classifier, and TwoLayerNet the
parameters of a two-layer network; their methods call the functions you write in `linear_classifier.py`
and `two_layer_net.py` (looked up when called, so the two files and this one may import each other).

`linear_classifier` and `two_layer_net` import these classes, so `linear_classifier.LinearSVM` and
`two_layer_net.TwoLayerNet` work as before.
"""

from __future__ import annotations

import torch


def _linear():
    """Your linear_classifier module (it imports this module at its top)."""
    from a2_linear import linear_classifier

    return linear_classifier


def _net():
    """Your two_layer_net module (it imports this module at its top)."""
    from a2_linear import two_layer_net

    return two_layer_net


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
        self.W, loss_history = _linear().train_linear_classifier(
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
        return _linear().predict_linear_classifier(self.W, X)

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
    """(Given.) A linear classifier trained with the multiclass SVM (hinge) loss: your `svm_loss_vectorized`."""

    def loss(
        self, W: torch.Tensor, X_batch: torch.Tensor, y_batch: torch.Tensor, reg: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return _linear().svm_loss_vectorized(W, X_batch, y_batch, reg)


class Softmax(LinearClassifier):
    """(Given.) A linear classifier trained with the softmax (cross-entropy) loss: your `softmax_loss_vectorized`."""

    def loss(
        self, W: torch.Tensor, X_batch: torch.Tensor, y_batch: torch.Tensor, reg: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return _linear().softmax_loss_vectorized(W, X_batch, y_batch, reg)


class TwoLayerNet:
    """
    (Given.) A two-layer network: its parameters and the functions of `two_layer_net` that act on them.

    The weights start as std * randn and the biases as zeros; call `dlcv.reset_seed` first for a
    repeatable start.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cuda",
        std: float = 1e-4,
    ):
        """
        Inputs:
        - input_size: D, the number of input features.
        - hidden_size: H, the number of hidden units.
        - output_size: C, the number of classes.
        - dtype: the dtype of the parameters.
        - device: the device of the parameters ('cuda' or 'cpu').
        - std: the standard deviation of the initial weights.
        """
        self.params: dict[str, torch.Tensor] = {
            "W1": std * torch.randn(input_size, hidden_size, dtype=dtype, device=device),  # (D, H)
            "b1": torch.zeros(hidden_size, dtype=dtype, device=device),  # (H,)
            "W2": std * torch.randn(hidden_size, output_size, dtype=dtype, device=device),  # (H, C)
            "b2": torch.zeros(output_size, dtype=dtype, device=device),  # (C,)
        }

    def loss(self, X: torch.Tensor, y: torch.Tensor | None = None, reg: float = 0.0):
        """The scores (y None) or the loss and gradients (y given); see `nn_forward_backward`."""
        return _net().nn_forward_backward(self.params, X, y, reg)

    def train(
        self,
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
        """Train the parameters by SGD; see `nn_train` for the inputs and the returned histories."""
        net = _net()
        return net.nn_train(
            self.params,
            net.nn_forward_backward,
            net.nn_predict,
            X,
            y,
            X_val,
            y_val,
            learning_rate,
            learning_rate_decay,
            reg,
            num_iters,
            batch_size,
            verbose,
        )

    def predict(self, X: torch.Tensor) -> torch.Tensor:
        """int64 tensor of shape (N,), the predicted label of every row of X (N, D); see `nn_predict`."""
        net = _net()
        return net.nn_predict(self.params, net.nn_forward_backward, X)

    def save(self, path: str) -> None:
        """Save the parameters to the file at path."""
        torch.save(self.params, path)
        print(f"Saved in {path}")

    def load(self, path: str) -> None:
        """Load parameters saved by `save` from the file at path, onto the device of the current ones."""
        self.params = torch.load(path, map_location=self.params["W1"].device)
        print(f"Loaded checkpoint file: {path}")
