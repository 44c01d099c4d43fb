"""
The Solver: minibatch training of a classification model, with accuracy checks once per epoch.

    from a3_networks.fully_connected_networks import TwoLayerNet, adam
    data = dlcv.preprocess_cifar10()          # X_train, y_train, X_val, y_val
    model = TwoLayerNet(hidden_dim=200)
    solver = dlcv.Solver(model, data, update_rule=adam, optim_config={"learning_rate": 1e-3},
                         lr_decay=0.95, num_epochs=10, batch_size=100)
    solver.train()
    solver.loss_history, solver.train_acc_history, solver.val_acc_history, solver.best_val_acc

The model must have
- `model.params`: a dict from parameter names to tensors;
- `model.loss(X, y)`: the loss (a 0-dim tensor or a number) and a dict of gradients keyed like params;
- `model.loss(X)`: the class scores, a tensor of shape (N, C), in test mode.

An update rule is a function `rule(w, dw, config) -> (next_w, config)`, as `sgd` and `adam` in
a3_networks/fully_connected_networks.py; each parameter keeps its own config (a copy of optim_config at
the start) between steps.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable

import torch

# Set by the grader when it runs the notebooks for a report: the share of each training's iterations to train
# (the course's [limits] notebook_training_scale), so that the notebooks fit a grading platform's clock.
TRAINING_SCALE_VARIABLE = "DLCV_TRAINING_SCALE"


def training_scale() -> float:
    """The share of its iterations a training runs: 1.0 unless the grader's report run set a smaller one."""
    try:
        scale = float(os.environ.get(TRAINING_SCALE_VARIABLE, "1"))
    except ValueError:
        return 1.0
    return scale if 0 < scale < 1 else 1.0


# The module where update rules given by name ("sgd", "adam", ...) are looked up; imported only when used,
# so that importing dlcv never imports an assignment.
UPDATE_RULES_MODULE = "a3_networks.fully_connected_networks"


class Solver:
    """Trains a model with minibatch gradient descent and records its loss and accuracies."""

    def __init__(self, model, data: dict, **kwargs):
        """
        Set up training; nothing is trained until `train` is called.

        Inputs:
        - model: an object with `params` and `loss` as described in the module docstring.
        - data: dict with 'X_train' (N_train, ...), 'y_train' int64 (N_train,), 'X_val' (N_val, ...) and
          'y_val' int64 (N_val,), as returned by `dlcv.preprocess_cifar10` (other keys are ignored).

        Optional keyword arguments (any other name raises ValueError):
        - update_rule: an update rule function, or the name of one in a3_networks.fully_connected_networks
          (such as 'sgd' or 'adam'); default: its `sgd`.
        - optim_config: dict of hyperparameters for the update rule, copied for every parameter; a
          'learning_rate' in it is multiplied by lr_decay after each epoch.
        - lr_decay: the factor applied to the learning rate after each epoch (default 1.0).
        - batch_size: examples per step (default 100).
        - num_epochs: how many epochs to train for (default 10).
        - num_train_samples: how many training examples (drawn at random) the training accuracy is
          measured on (default 1000; None means all; 0 means none: the history then holds 0.0).
        - num_val_samples: the same for the validation accuracy (default None: all).
        - device: the device to which each minibatch is moved (default 'cpu').
        - checkpoint_name: if not None, save a checkpoint to '<checkpoint_name>_epoch_<n>.pkl' at every
          accuracy check.
        - print_every: print the loss every this many iterations (default 10).
        - print_acc_every: print the accuracies every this many epochs (default 1).
        - verbose: False prints nothing (default True).
        """
        self.model = model
        self.X_train = data["X_train"]
        self.y_train = data["y_train"]
        self.X_val = data["X_val"]
        self.y_val = data["y_val"]

        update_rule = kwargs.pop("update_rule", None)
        self.optim_config = kwargs.pop("optim_config", {})
        self.lr_decay = kwargs.pop("lr_decay", 1.0)
        self.batch_size = kwargs.pop("batch_size", 100)
        self.num_epochs = kwargs.pop("num_epochs", 10)
        self.num_train_samples = kwargs.pop("num_train_samples", 1000)
        self.num_val_samples = kwargs.pop("num_val_samples", None)
        self.device = kwargs.pop("device", "cpu")
        self.checkpoint_name = kwargs.pop("checkpoint_name", None)
        self.print_every = kwargs.pop("print_every", 10)
        self.print_acc_every = kwargs.pop("print_acc_every", 1)
        self.verbose = kwargs.pop("verbose", True)
        if kwargs:
            unknown = ", ".join(repr(k) for k in kwargs)
            raise ValueError(f"Solver: unrecognized arguments {unknown}")
        self.update_rule = _resolve_update_rule(update_rule)
        self._reset()

    def _reset(self) -> None:
        """Reset the bookkeeping: epoch, histories, best parameters, and one optim config per parameter."""
        self.epoch = 0
        self.best_val_acc = 0.0
        self.best_params: dict[str, torch.Tensor] = {}
        self.loss_history: list[float] = []
        self.train_acc_history: list[float] = []
        self.val_acc_history: list[float] = []
        self.optim_configs = {p: dict(self.optim_config) for p in self.model.params}

    def _step(self) -> None:
        """One gradient update on a random minibatch (drawn without replacement within the batch)."""
        num_train = self.X_train.shape[0]
        batch_mask = torch.randperm(num_train)[: self.batch_size]  # (batch_size,)
        X_batch = self.X_train[batch_mask].to(self.device)
        y_batch = self.y_train[batch_mask].to(self.device)

        loss, grads = self.model.loss(X_batch, y_batch)
        self.loss_history.append(float(loss))

        with torch.no_grad():
            for p, w in self.model.params.items():
                next_w, next_config = self.update_rule(w, grads[p], self.optim_configs[p])
                self.model.params[p] = next_w
                self.optim_configs[p] = next_config

    def _save_checkpoint(self) -> None:
        if self.checkpoint_name is None:
            return
        checkpoint = {
            "params": self.model.params,
            "update_rule": getattr(self.update_rule, "__name__", repr(self.update_rule)),
            "lr_decay": self.lr_decay,
            "optim_config": self.optim_config,
            "batch_size": self.batch_size,
            "num_train_samples": self.num_train_samples,
            "num_val_samples": self.num_val_samples,
            "epoch": self.epoch,
            "loss_history": self.loss_history,
            "train_acc_history": self.train_acc_history,
            "val_acc_history": self.val_acc_history,
        }
        filename = f"{self.checkpoint_name}_epoch_{self.epoch}.pkl"
        if self.verbose:
            print(f'Saving checkpoint to "{filename}"')
        torch.save(checkpoint, filename)

    def check_accuracy(
        self, X: torch.Tensor, y: torch.Tensor, num_samples: int | None = None, batch_size: int = 100
    ) -> float:
        """
        The model's accuracy on the given data, predicting in batches.

        Inputs:
        - X: tensor of shape (N, d_1, ..., d_k), the examples.
        - y: int64 tensor of shape (N,), their labels.
        - num_samples: if not None and less than N, measure on this many examples drawn at random.
        - batch_size: examples per call to model.loss (bounds the memory used).

        Returns:
        - acc: Python float in [0, 1], the fraction of the examples classified correctly.
        """
        N = X.shape[0]
        if num_samples is not None and N > num_samples:
            mask = torch.randperm(N)[:num_samples]  # (num_samples,)
            N = num_samples
            X, y = X[mask], y[mask]
        X = X.to(self.device)
        y = y.to(self.device)

        num_batches = (N + batch_size - 1) // batch_size
        y_pred = []
        with torch.no_grad():
            for i in range(num_batches):
                start, end = i * batch_size, (i + 1) * batch_size
                scores = self.model.loss(X[start:end])  # (batch, C)
                y_pred.append(torch.argmax(scores, dim=1))
        if not y_pred:
            return 0.0
        y_pred = torch.cat(y_pred)  # (N,)
        return (y_pred == y).float().mean().item()

    def train(self, time_limit: float | None = None, return_best_params: bool = True) -> None:
        """
        Train the model: num_epochs epochs of batch_size-example steps, measuring the training and
        validation accuracies at the first step, at the end of every epoch and at the last step.

        Inputs:
        - time_limit: if not None, a number of seconds: training stops before a step that would end
          after time_limit seconds (judged by the duration of the previous step).
        - return_best_params: if True, leave the model with the parameters of the best validation
          accuracy seen (self.best_params) instead of the last ones.
        """
        num_train = self.X_train.shape[0]
        iterations_per_epoch = max(num_train // self.batch_size, 1)
        num_iterations = self.num_epochs * iterations_per_epoch
        scale = training_scale()
        if scale < 1:
            asked, num_iterations = num_iterations, max(1, math.ceil(scale * num_iterations))
            if time_limit is not None:
                time_limit *= scale
            print(
                f"(The grader's report run trains {num_iterations} of the {asked} iterations asked, to fit the "
                "grading platform's time; your own run trains them all, so its accuracies can be higher.)"
            )
        prev_time = start_time = time.time()

        for t in range(num_iterations):
            cur_time = time.time()
            if time_limit is not None and t > 0:
                next_time = cur_time - prev_time
                if cur_time - start_time + next_time > time_limit:
                    if self.verbose:
                        print(
                            f"(Time {cur_time - start_time:.2f} sec; Iteration {t} / {num_iterations}) "
                            f"loss: {self.loss_history[-1]:f}"
                        )
                        print("End of training; next iteration will exceed the time limit.")
                    break
            prev_time = cur_time

            self._step()

            if self.verbose and t % self.print_every == 0:
                print(
                    f"(Time {time.time() - start_time:.2f} sec; Iteration {t + 1} / {num_iterations}) "
                    f"loss: {self.loss_history[-1]:f}"
                )

            epoch_end = (t + 1) % iterations_per_epoch == 0
            if epoch_end:
                self.epoch += 1
                for config in self.optim_configs.values():
                    if "learning_rate" in config:
                        config["learning_rate"] *= self.lr_decay

            if t == 0 or t == num_iterations - 1 or epoch_end:
                train_acc = self.check_accuracy(self.X_train, self.y_train, num_samples=self.num_train_samples)
                val_acc = self.check_accuracy(self.X_val, self.y_val, num_samples=self.num_val_samples)
                self.train_acc_history.append(train_acc)
                self.val_acc_history.append(val_acc)
                self._save_checkpoint()
                if self.verbose and self.epoch % self.print_acc_every == 0:
                    print(f"(Epoch {self.epoch} / {self.num_epochs}) train acc: {train_acc:f}; val_acc: {val_acc:f}")
                if not self.best_params or val_acc > self.best_val_acc:
                    self.best_val_acc = val_acc
                    self.best_params = {k: v.clone() for k, v in self.model.params.items()}

        if return_best_params and self.best_params:
            self.model.params = self.best_params


def _resolve_update_rule(update_rule) -> Callable:
    """An update rule function: update_rule itself, one looked up by name, or the default sgd."""
    if callable(update_rule):
        return update_rule
    import importlib

    rules = importlib.import_module(UPDATE_RULES_MODULE)
    if update_rule is None:
        return rules.sgd
    if isinstance(update_rule, str):
        rule = getattr(rules, update_rule, None)
        if callable(rule):
            return rule
        raise ValueError(f"Solver: update_rule {update_rule!r} is not a function in {UPDATE_RULES_MODULE}")
    raise ValueError(f"Solver: update_rule must be a function or a name, got {type(update_rule).__name__}")
