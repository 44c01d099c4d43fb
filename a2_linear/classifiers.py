"""
Given classes for A2 (not part of the assignment; not taken from a submission).

LinearClassifier, LinearSVM and Softmax hold the weights of a linear classifier, and TwoLayerNet the
parameters of a two-layer network; their methods call the functions you write in `linear_classifier.py`
and `two_layer_net.py` (looked up when called, so the two files and this one may import each other).

`linear_classifier` and `two_layer_net` import these classes, so `linear_classifier.LinearSVM` and
`two_layer_net.TwoLayerNet` work as before.

The autograder's caps on training: while the grader judges a function that trains (find_best_net,
test_one_param_set), it caps every call of `LinearClassifier.train` and `TwoLayerNet.train` (see
`set_training_caps`): at most so many iterations, of at most so many examples each, and at most so many
seconds per call. Your requests are recorded, and the feedback says what was capped ("trained for at most
150 of your 3000 iterations"). The accuracy is still measured by the grader, on held-out data. Without caps
(your notebooks) the train methods do exactly what they are asked.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

# ---- the grader's caps on training ------------------------------------------------------------------

_caps: dict[str, Any] = {"max_iters": None, "max_batch_size": None, "max_seconds": None}
_record: list[dict[str, Any]] = []
CHUNK_ITERS = 25  # under a time cap, training runs in chunks of whole epochs of about this many iterations


def set_training_caps(
    max_iters: int | None = None, max_batch_size: int | None = None, max_seconds: float | None = None
) -> None:
    """
    (Given; the grader calls it, you need not.) Cap every later call of LinearClassifier.train and
    TwoLayerNet.train, until the next call of this function; with no arguments, no caps. Clears the record
    (see `training_record`).

    Inputs:
    - max_iters: at most this many iterations per train call (None: as many as asked).
    - max_batch_size: minibatches of at most this many examples (None: as large as asked).
    - max_seconds: a train call stops at the end of the first epoch that ends after this many seconds (None:
      no time limit). Training then runs in chunks of whole epochs, each a call of your trainer that goes on
      where the previous one stopped (the same steps, minibatches and learning rates as one long call).
    """
    _caps.update(max_iters=max_iters, max_batch_size=max_batch_size, max_seconds=max_seconds)
    _record.clear()


def training_record() -> list[dict[str, Any]]:
    """
    (Given; for the grader.) One dict per train call since the caps were set: 'model' (the class's name),
    'num_iters' and 'batch_size' (what was asked), 'iters' and 'batch' (what was trained), 'seconds', and
    'stopped': 'iterations' (the iteration cap), 'time' (the time cap) or None (trained as asked).
    """
    return [dict(r) for r in _record]


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _train_under_caps(
    model: str, num_iters: Any, batch_size: Any, num_train: int, run: Callable[[Any, Any, int], Any]
) -> list[Any]:
    """The results of `run(iters, batch_size, done)`, which trains `iters` iterations after `done` ones: one call
    without caps; under the caps, the capped iterations and batch size, in chunks of whole epochs while a time
    cap is set. Records what was asked and what was trained."""
    cap_iters, cap_batch, cap_seconds = _caps["max_iters"], _caps["max_batch_size"], _caps["max_seconds"]
    if cap_iters is None and cap_batch is None and cap_seconds is None:
        return [run(num_iters, batch_size, 0)]
    iters = min(num_iters, cap_iters) if cap_iters is not None and _is_count(num_iters) else num_iters
    batch = min(batch_size, cap_batch) if cap_batch is not None and _is_count(batch_size) else batch_size
    entry: dict[str, Any] = {
        "model": model,
        "num_iters": num_iters if _is_count(num_iters) else None,
        "batch_size": batch_size if _is_count(batch_size) else None,
        "iters": iters if _is_count(iters) else None,
        "batch": batch if _is_count(batch) else None,
        "seconds": 0.0,
        "stopped": "iterations" if iters != num_iters else None,
    }
    _record.append(entry)
    t0 = time.perf_counter()
    if cap_seconds is None or not _is_count(iters) or not _is_count(batch) or batch <= 0:
        results = [run(iters, batch, 0)]
    else:
        per_epoch = max(num_train // batch, 1)
        chunk = per_epoch * max(1, -(-CHUNK_ITERS // per_epoch))
        results, done = [], 0
        while True:
            n = min(chunk, iters - done)
            results.append(run(n, batch, done))
            done += n
            if done >= iters:
                break
            if time.perf_counter() - t0 >= cap_seconds:
                entry.update(iters=done, stopped="time")
                break
    entry["seconds"] = time.perf_counter() - t0
    return results


def _joined(results: list[Any]) -> Any:
    """The chunks' results as one: lists joined, dicts of lists joined key by key (else the last result)."""
    if len(results) == 1:
        return results[0]
    if all(isinstance(r, list) for r in results):
        return [v for r in results for v in r]
    if all(isinstance(r, dict) for r in results):
        keys = results[-1].keys()
        if all(r.keys() == keys and all(isinstance(v, list) for v in r.values()) for r in results):
            return {k: [v for r in results for v in r[k]] for k in keys}
    return results[-1]


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

        def run(iters: Any, batch: Any, done: int) -> Any:
            self.W, loss_history = _linear().train_linear_classifier(
                self.loss, self.W, X_train, y_train, learning_rate, reg, iters, batch, verbose
            )
            return loss_history

        num_train = X_train.shape[0] if isinstance(X_train, torch.Tensor) else 0
        return _joined(_train_under_caps(type(self).__name__, num_iters, batch_size, num_train, run))

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
        device: str | torch.device = "cpu",
        std: float = 1e-4,
    ):
        """
        Inputs:
        - input_size: D, the number of input features.
        - hidden_size: H, the number of hidden units.
        - output_size: C, the number of classes.
        - dtype: the dtype of the parameters.
        - device: where the parameters start ('cpu' or 'cuda'); `loss`, `train` and `predict` move them to the
          device of the data they are given, so code that leaves it out works on a CPU (as the grader runs it)
          and on a GPU alike.
        - std: the standard deviation of the initial weights.
        """
        self.params: dict[str, torch.Tensor] = {
            "W1": std * torch.randn(input_size, hidden_size, dtype=dtype, device=device),  # (D, H)
            "b1": torch.zeros(hidden_size, dtype=dtype, device=device),  # (H,)
            "W2": std * torch.randn(hidden_size, output_size, dtype=dtype, device=device),  # (H, C)
            "b2": torch.zeros(output_size, dtype=dtype, device=device),  # (C,)
        }

    def _follow(self, X: Any) -> None:
        """Move the parameters to the device of the data (the net follows its inputs, never a fixed device)."""
        if isinstance(X, torch.Tensor) and self.params["W1"].device != X.device:
            self.params = {k: v.to(X.device) for k, v in self.params.items()}

    def loss(self, X: torch.Tensor, y: torch.Tensor | None = None, reg: float = 0.0):
        """The scores (y None) or the loss and gradients (y given); see `nn_forward_backward`."""
        self._follow(X)
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
        """Train the parameters by SGD; see `nn_train` for the inputs and the returned histories. (Under the
        grader's caps, see `set_training_caps`, it trains at most as much as they allow.)"""
        net = _net()
        self._follow(X)
        num_train = X.shape[0] if isinstance(X, torch.Tensor) else 0

        def run(iters: Any, batch: Any, done: int) -> Any:
            # a chunk that goes on after `done` iterations (whole epochs) starts at the learning rate decayed so far,
            # multiplied epoch by epoch as a trainer's loop does it
            decayed = learning_rate
            for _ in range(done // max(num_train // batch, 1) if done else 0):
                decayed *= learning_rate_decay
            return net.nn_train(
                self.params,
                net.nn_forward_backward,
                net.nn_predict,
                X,
                y,
                X_val,
                y_val,
                decayed,
                learning_rate_decay,
                reg,
                iters,
                batch,
                verbose,
            )

        return _joined(_train_under_caps(type(self).__name__, num_iters, batch_size, num_train, run))

    def predict(self, X: torch.Tensor) -> torch.Tensor:
        """int64 tensor of shape (N,), the predicted label of every row of X (N, D); see `nn_predict`."""
        net = _net()
        self._follow(X)
        return net.nn_predict(self.params, net.nn_forward_backward, X)

    def save(self, path: str) -> None:
        """Save the parameters to the file at path."""
        torch.save(self.params, path)
        print(f"Saved in {path}")

    def load(self, path: str) -> None:
        """Load parameters saved by `save` from the file at path, onto the device of the current ones."""
        self.params = torch.load(path, map_location=self.params["W1"].device)
        print(f"Loaded checkpoint file: {path}")
