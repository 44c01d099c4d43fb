"""
Fully connected networks, built from layers with hand-written backward passes, and the update rules that
train them.

Every layer is a class with two static methods, the contract used throughout this assignment:

    out, cache = Layer.forward(x, ...)       # cache: whatever the backward pass will need
    dx, ... = Layer.backward(dout, cache)    # one gradient per tensor argument of forward, in that order

where dout is the gradient of the loss with respect to out (same shape as out), and each returned gradient
has the shape of the tensor it belongs to. Networks chain the forward passes, keep the caches, and then
run the backward passes in reverse order. The given code they use (softmax_loss, sgd and the sandwich layer
Linear_ReLU) is in layer_utils.py, imported here.

Conventions for every function here (the grader checks them):
- return tensors in the dtype and on the device of the inputs (create new tensors with `device=` and `dtype=`
  taken from an input, or with `torch.zeros_like` and friends; computing in float64 inside and converting the
  result back is fine);
- leave the inputs unchanged (work on new tensors), except that an update rule may update w in place (or
  return a new tensor) and keeps its state in config;
- L2 regularisation is `reg * sum(W * W)` over the weight matrices only (never the biases), so its gradient is
  `2 * reg * W`; losses are averaged over the N examples of a batch. The course's text asks FullyConnectedNet for
  `0.5 * reg * sum(W * W)` (gradient `reg * W`): that is accepted too, when the loss and every gradient use it.

Data and targets: the grader trains on CIFAR-10 where it is installed, else on the offline digits (scikit-learn's
8x8 digits drawn as 3x32x32 images; `grader grade` says which). create_solver_instance must reach 50% on CIFAR-10's
test split (90% on the digits); the grader trains your Solver's choice itself, for at most 20 epochs and 30 s on the
digits (120 s on CIFAR-10). get_three_layer_network_params and get_five_layer_network_params must overfit 50
training images (100%; the grader accepts 49 of the 50) in 20 epochs of batch 25.

Rules the grader enforces in this file (see `grader list --rules`):
- Linear may not use:
  - torch.nn.functional.linear, torch.nn.functional.bilinear, torch.nn.Linear: it computes the
    linear layer you are asked to write.
- ReLU may not use:
  - torch.nn.functional.relu, torch.nn.functional.relu_, torch.relu, torch.relu_, torch.Tensor.relu,
    torch.Tensor.relu_, torch.nn.ReLU: it computes the ReLU you are asked to write (clamp, a mask
    such as x * (x > 0), or torch.where are fine).
- Dropout may not use:
  - torch.nn.functional.dropout, torch.dropout, torch.dropout_, torch.nn.functional.alpha_dropout,
    torch.nn.functional.feature_alpha_dropout, torch.nn.Dropout: it computes the dropout you are
    asked to write (draw the mask yourself, e.g. with torch.rand_like).
- sgd_momentum, rmsprop, adam may not use:
  - torch.optim: PyTorch's optimisers take the update step you are asked to write.
- every function: no autograd (requires_grad, .backward(), torch.autograd, torch.func): gradients
  are computed by hand.
- the file may use: only the modules torch, math, random, statistics, typing, abc, enum,
  collections, functools, itertools, dataclasses, a3_networks, dlcv (a use of another module holds
  back every function of the file; an import that nothing uses only earns a warning).

Your code goes where a TODO comment asks for it; leave the rest of the file as it is.
"""

from __future__ import annotations

import torch

from a3_networks.layer_utils import Linear_ReLU, sgd, softmax_loss  # given code, kept by the kit
from dlcv import Solver


class Linear:
    """A fully connected (affine) layer: out = x @ w + b, with each example of x flattened to a vector."""

    @staticmethod
    def forward(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, tuple]:
        """
        Forward pass of a linear layer.

        Each example x[i] of shape (d_1, ..., d_k) is reshaped into a vector of dimension
        D = d_1 * ... * d_k, then mapped to M outputs.

        Inputs:
        - x: tensor of shape (N, d_1, ..., d_k), a batch of N examples.
        - w: tensor of shape (D, M), the weights.
        - b: tensor of shape (M,), the biases.

        Returns a tuple of:
        - out: tensor of shape (N, M).
        - cache: (x, w, b), for the backward pass.
        """
        N = x.shape[0]
        out = None
        # TODO: Flatten every example of x into a row of length D and compute out = x @ w + b.
        # BEGIN SOLUTION
        x_flat = x.reshape(N, -1)  # (N, D)
        out = x_flat @ w + b  # (N, M)
        # END SOLUTION
        cache = (x, w, b)
        return out, cache

    @staticmethod
    def backward(dout: torch.Tensor, cache: tuple) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """
        Backward pass of a linear layer.

        Inputs:
        - dout: tensor of shape (N, M), the upstream gradient.
        - cache: (x, w, b) as stored by forward, x of shape (N, d_1, ..., d_k), w (D, M), b (M,).

        Returns a tuple of:
        - dx: tensor of shape (N, d_1, ..., d_k), the gradient with respect to x.
        - dw: tensor of shape (D, M), the gradient with respect to w.
        - db: tensor of shape (M,), the gradient with respect to b.
        """
        x, w, b = cache
        N = x.shape[0]
        dx, dw, db = None, None, None
        # TODO: Compute dx (reshaped back to x's shape), dw and db. Each is a matrix product or a sum.
        # BEGIN SOLUTION
        x_flat = x.reshape(N, -1)  # (N, D)
        dx = (dout @ w.t()).reshape(x.shape)  # (N, d_1, ..., d_k)
        dw = x_flat.t() @ dout  # (D, M)
        db = dout.sum(dim=0)  # (M,)
        # END SOLUTION
        return dx, dw, db


class ReLU:
    """The rectified linear unit, applied elementwise: out = max(0, x)."""

    @staticmethod
    def forward(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Forward pass of a ReLU.

        Inputs:
        - x: tensor of any shape.

        Returns a tuple of:
        - out: tensor of the shape of x.
        - cache: x, for the backward pass.
        """
        out = None
        # TODO: Compute out = max(0, x) elementwise, without changing x in place.
        # BEGIN SOLUTION
        out = x.clamp(min=0)
        # END SOLUTION
        cache = x
        return out, cache

    @staticmethod
    def backward(dout: torch.Tensor, cache: torch.Tensor) -> torch.Tensor:
        """
        Backward pass of a ReLU.

        Inputs:
        - dout: tensor of any shape, the upstream gradient.
        - cache: x, the input of forward, of the shape of dout.

        Returns:
        - dx: tensor of the shape of x, the gradient with respect to x.
        """
        x = cache
        dx = None
        # TODO: Let the upstream gradient through where x > 0, and zero where x < 0 (at exactly 0 either is fine).
        # BEGIN SOLUTION
        dx = dout * (x > 0)
        # END SOLUTION
        return dx


class TwoLayerNet:
    """
    A two-layer fully connected network: linear - relu - linear - softmax.

    The learnable parameters live in the dictionary self.params: 'W1' (D, H), 'b1' (H,), 'W2' (H, C),
    'b2' (C,), with D = input_dim, H = hidden_dim, C = num_classes. The Solver trains the network by
    calling `loss` and updating self.params.
    """

    def __init__(
        self,
        input_dim: int = 3 * 32 * 32,
        hidden_dim: int = 100,
        num_classes: int = 10,
        weight_scale: float = 1e-3,
        reg: float = 0.0,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
    ):
        """
        Initialise a new network.

        Inputs:
        - input_dim: D, the size of one (flattened) input example.
        - hidden_dim: H, the size of the hidden layer.
        - num_classes: C, the number of classes.
        - weight_scale: the standard deviation of the random initial weights.
        - reg: the L2 regularisation strength.
        - dtype: the dtype of the parameters (float64 for gradient checks).
        - device: the device of the parameters.
        """
        self.params = {}
        self.reg = reg
        # TODO: Initialise W1 and W2 from a normal distribution with mean 0 and standard deviation
        # weight_scale, and b1 and b2 with zeros, all with the given dtype and device. Store them in
        # self.params under the keys 'W1', 'b1', 'W2', 'b2'.
        # BEGIN SOLUTION
        self.params["W1"] = weight_scale * torch.randn(input_dim, hidden_dim, dtype=dtype, device=device)
        self.params["b1"] = torch.zeros(hidden_dim, dtype=dtype, device=device)
        self.params["W2"] = weight_scale * torch.randn(hidden_dim, num_classes, dtype=dtype, device=device)
        self.params["b2"] = torch.zeros(num_classes, dtype=dtype, device=device)
        # END SOLUTION

    def save(self, path: str) -> None:
        """(Given.) Save the parameters and the regularisation strength to the file at path."""
        checkpoint = {"reg": self.reg, "params": self.params}
        torch.save(checkpoint, path)

    def load(self, path: str, dtype: torch.dtype, device: str | torch.device) -> None:
        """(Given.) Load what `save` wrote, converting the parameters to dtype on device."""
        checkpoint = torch.load(path, map_location="cpu")
        self.reg = checkpoint["reg"]
        self.params = {k: v.to(dtype=dtype, device=device) for k, v in checkpoint["params"].items()}

    def loss(self, X: torch.Tensor, y: torch.Tensor | None = None):
        """
        Compute the class scores, or the loss and its gradient, for a minibatch.

        Inputs:
        - X: tensor of shape (N, d_1, ..., d_k) with d_1 * ... * d_k = D, the input examples.
        - y: int64 tensor of shape (N,), the labels; None means "only predict".

        Returns:
        - If y is None: scores, a tensor of shape (N, C), scores[i, c] the score of class c for X[i].
        - Otherwise a tuple of:
          - loss: 0-dim tensor, the mean softmax loss plus reg * (sum(W1 * W1) + sum(W2 * W2)).
          - grads: dict with the keys of self.params, grads[k] the gradient of the loss with respect to
            self.params[k] (same shape).
        """
        scores = None
        # TODO: Compute the class scores of X with Linear_ReLU and Linear, keeping both caches.
        # BEGIN SOLUTION
        hidden, cache1 = Linear_ReLU.forward(X, self.params["W1"], self.params["b1"])  # (N, H)
        scores, cache2 = Linear.forward(hidden, self.params["W2"], self.params["b2"])  # (N, C)
        # END SOLUTION
        if y is None:
            return scores

        loss, grads = 0, {}
        # TODO: Compute the loss (softmax_loss plus the L2 regularisation of W1 and W2) and the gradients
        # of every parameter, with the backward passes of the layers in reverse order.
        # BEGIN SOLUTION
        W1, W2 = self.params["W1"], self.params["W2"]
        loss, dscores = softmax_loss(scores, y)  # dscores: (N, C)
        loss = loss + self.reg * ((W1 * W1).sum() + (W2 * W2).sum())
        dhidden, grads["W2"], grads["b2"] = Linear.backward(dscores, cache2)  # dhidden: (N, H)
        _, grads["W1"], grads["b1"] = Linear_ReLU.backward(dhidden, cache1)
        grads["W2"] = grads["W2"] + 2 * self.reg * W2
        grads["W1"] = grads["W1"] + 2 * self.reg * W1
        # END SOLUTION
        return loss, grads


class FullyConnectedNet:
    """
    A fully connected network with any number of hidden layers and optional dropout:

        {linear - relu - [dropout]} x (L - 1) - linear - softmax

    with L = len(hidden_dims) + 1 layers. The learnable parameters live in the dictionary self.params:
    'W1', 'b1' for the first layer, 'W2', 'b2' for the second, ..., 'WL', 'bL' for the last one.
    """

    def __init__(
        self,
        hidden_dims: list[int],
        input_dim: int = 3 * 32 * 32,
        num_classes: int = 10,
        dropout: float = 0.0,
        reg: float = 0.0,
        weight_scale: float = 1e-2,
        seed: int | None = None,
        dtype: torch.dtype = torch.float,
        device: str | torch.device = "cpu",
    ):
        """
        Initialise a new network.

        Inputs:
        - hidden_dims: list of L - 1 ints, the size of each hidden layer.
        - input_dim: D, the size of one (flattened) input example.
        - num_classes: C, the number of classes.
        - dropout: in [0, 1), the probability of dropping each hidden unit; 0 means no dropout.
        - reg: the L2 regularisation strength.
        - weight_scale: the standard deviation of the random initial weights.
        - seed: if not None, the dropout masks are drawn with this seed, so that they repeat (for gradient
          checks).
        - dtype: the dtype of the parameters (float64 for gradient checks).
        - device: the device of the parameters.
        """
        self.use_dropout = dropout != 0
        self.reg = reg
        self.num_layers = 1 + len(hidden_dims)
        self.dtype = dtype
        self.params = {}
        # TODO: Initialise the weights Wi of every layer i = 1..L from a normal distribution with mean 0
        # and standard deviation weight_scale, and the biases bi with zeros (dtype and device as given).
        # Layer i maps the output of layer i - 1 (the input for i = 1) to hidden_dims[i - 1] (C for i = L).
        # BEGIN SOLUTION
        dims = [input_dim] + list(hidden_dims) + [num_classes]
        for i in range(1, self.num_layers + 1):
            d_in, d_out = dims[i - 1], dims[i]
            self.params[f"W{i}"] = weight_scale * torch.randn(d_in, d_out, dtype=dtype, device=device)
            self.params[f"b{i}"] = torch.zeros(d_out, dtype=dtype, device=device)
        # END SOLUTION

        # Every dropout layer shares one dropout_param dictionary; `loss` sets its mode.
        self.dropout_param = {}
        if self.use_dropout:
            self.dropout_param = {"mode": "train", "p": dropout}
            if seed is not None:
                self.dropout_param["seed"] = seed

    def save(self, path: str) -> None:
        """(Given.) Save the parameters and the settings of the network to the file at path."""
        checkpoint = {
            "reg": self.reg,
            "num_layers": self.num_layers,
            "use_dropout": self.use_dropout,
            "dropout_param": self.dropout_param,
            "params": self.params,
        }
        torch.save(checkpoint, path)

    def load(self, path: str, dtype: torch.dtype, device: str | torch.device) -> None:
        """(Given.) Load what `save` wrote, converting the parameters to dtype on device."""
        checkpoint = torch.load(path, map_location="cpu")
        self.reg = checkpoint["reg"]
        self.num_layers = checkpoint["num_layers"]
        self.use_dropout = checkpoint["use_dropout"]
        self.dropout_param = checkpoint["dropout_param"]
        self.dtype = dtype
        self.params = {k: v.to(dtype=dtype, device=device) for k, v in checkpoint["params"].items()}

    def loss(self, X: torch.Tensor, y: torch.Tensor | None = None):
        """
        Compute the class scores, or the loss and its gradient, for a minibatch.

        Dropout runs in 'test' mode (as the identity) when y is None, in 'train' mode otherwise.

        Inputs:
        - X: tensor of shape (N, d_1, ..., d_k) with d_1 * ... * d_k = D, the input examples.
        - y: int64 tensor of shape (N,), the labels; None means "only predict".

        Returns:
        - If y is None: scores, a tensor of shape (N, C).
        - Otherwise a tuple of:
          - loss: 0-dim tensor, the mean softmax loss plus reg * sum of sum(Wi * Wi) over the layers.
          - grads: dict with the keys of self.params, grads[k] the gradient of the loss with respect to
            self.params[k] (same shape).
        """
        mode = "test" if y is None else "train"
        if self.use_dropout:
            self.dropout_param["mode"] = mode

        scores = None
        # TODO: Compute the class scores: for each of the first L - 1 layers Linear_ReLU, followed by
        # Dropout.forward(..., self.dropout_param) when self.use_dropout; then Linear for the last layer.
        # Keep every cache for the backward pass.
        # BEGIN SOLUTION
        caches = []
        h = X  # (N, d_1, ..., d_k), then (N, hidden_dims[i]) after each hidden layer
        for i in range(1, self.num_layers):
            h, fc_relu_cache = Linear_ReLU.forward(h, self.params[f"W{i}"], self.params[f"b{i}"])
            dropout_cache = None
            if self.use_dropout:
                h, dropout_cache = Dropout.forward(h, self.dropout_param)
            caches.append((fc_relu_cache, dropout_cache))
        L = self.num_layers
        scores, last_cache = Linear.forward(h, self.params[f"W{L}"], self.params[f"b{L}"])  # (N, C)
        # END SOLUTION
        if mode == "test":
            return scores

        loss, grads = 0.0, {}
        # TODO: Compute the loss (softmax_loss plus the L2 regularisation of every Wi) and the gradients
        # of every parameter, with the backward passes of the layers in reverse order.
        # BEGIN SOLUTION
        loss, dh = softmax_loss(scores, y)  # dh: (N, C)
        dh, grads[f"W{L}"], grads[f"b{L}"] = Linear.backward(dh, last_cache)
        for i in range(L - 1, 0, -1):
            fc_relu_cache, dropout_cache = caches[i - 1]
            if self.use_dropout:
                dh = Dropout.backward(dh, dropout_cache)
            dh, grads[f"W{i}"], grads[f"b{i}"] = Linear_ReLU.backward(dh, fc_relu_cache)
        for i in range(1, L + 1):
            W = self.params[f"W{i}"]
            loss = loss + self.reg * (W * W).sum()
            grads[f"W{i}"] = grads[f"W{i}"] + 2 * self.reg * W
        # END SOLUTION
        return loss, grads


def create_solver_instance(data_dict: dict, dtype: torch.dtype, device: str | torch.device) -> Solver:
    """
    Build a Solver that trains a TwoLayerNet to a good validation accuracy (the notebook's target on
    CIFAR-10 is 50%).

    Inputs:
    - data_dict: dict with 'X_train' (N_train, D) or (N_train, 3, 32, 32), 'y_train' (N_train,), 'X_val'
      and 'y_val', as returned by dlcv.preprocess_cifar10.
    - dtype: the dtype of the model's parameters (that of the data).
    - device: the device of the model's parameters and of the training.

    Returns:
    - solver: a Solver, not yet trained; the notebook calls solver.train().
    """
    solver = None
    # TODO: Create a TwoLayerNet (dtype and device as given) and a Solver that trains it on data_dict.
    # Choose the hidden size, weight scale, regularisation, learning rate, decay and number of epochs.
    # BEGIN SOLUTION
    input_dim = data_dict["X_train"][0].numel()
    model = TwoLayerNet(input_dim=input_dim, hidden_dim=200, weight_scale=1e-2, reg=1e-4, dtype=dtype, device=device)
    solver = Solver(
        model,
        data_dict,
        update_rule=sgd,
        optim_config={"learning_rate": 2e-1},
        lr_decay=0.95,
        num_epochs=20,
        batch_size=100,
        device=device,
        print_every=1000,
        verbose=False,
    )
    # END SOLUTION
    return solver


def get_three_layer_network_params() -> tuple[float, float]:
    """
    The weight scale and learning rate with which FullyConnectedNet([100, 100]) overfits 50 training
    examples (100% training accuracy) within 20 epochs of plain SGD with batch size 25.

    Returns a tuple of:
    - weight_scale: float, the standard deviation of the initial weights.
    - learning_rate: float, the SGD learning rate.
    """
    weight_scale = 1e-2
    learning_rate = 1e-4
    # TODO: Set weight_scale and learning_rate (try a few values of each, on a log scale).
    # BEGIN SOLUTION
    weight_scale = 1e-1
    learning_rate = 1e-1
    # END SOLUTION
    return weight_scale, learning_rate


def get_five_layer_network_params() -> tuple[float, float]:
    """
    The weight scale and learning rate with which FullyConnectedNet([100, 100, 100, 100]) overfits 50
    training examples (100% training accuracy) within 20 epochs of plain SGD with batch size 25.

    Returns a tuple of:
    - weight_scale: float, the standard deviation of the initial weights.
    - learning_rate: float, the SGD learning rate.
    """
    weight_scale = 1e-2
    learning_rate = 2e-3
    # TODO: Set weight_scale and learning_rate (deeper networks are more sensitive to both).
    # BEGIN SOLUTION
    weight_scale = 2e-1
    learning_rate = 2e-2
    # END SOLUTION
    return weight_scale, learning_rate


def sgd_momentum(w: torch.Tensor, dw: torch.Tensor, config: dict | None = None) -> tuple[torch.Tensor, dict]:
    """
    Stochastic gradient descent with momentum: v = momentum * v - learning_rate * dw; next_w = w + v.

    Inputs:
    - w: tensor of any shape, the current weights.
    - dw: tensor of the shape of w, the gradient of the loss with respect to w.
    - config: dict with
      - learning_rate: the step size (default 1e-2).
      - momentum: in [0, 1), how much of the previous velocity is kept (default 0.9; 0 gives plain sgd).
      - velocity: tensor of the shape of w, the moving average of the steps (default zeros).

    Returns a tuple of:
    - next_w: tensor of the shape of w, the updated weights.
    - config: the config dict, with defaults filled in and the new velocity stored.
    """
    if config is None:
        config = {}
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("momentum", 0.9)
    v = config.get("velocity", torch.zeros_like(w))  # (same shape as w)

    next_w = None
    # TODO: Update the velocity v and compute next_w, as in the formula above.
    # BEGIN SOLUTION
    v = config["momentum"] * v - config["learning_rate"] * dw
    next_w = w + v
    # END SOLUTION
    config["velocity"] = v
    return next_w, config


def rmsprop(w: torch.Tensor, dw: torch.Tensor, config: dict | None = None) -> tuple[torch.Tensor, dict]:
    """
    RMSProp: a per-weight step size from a moving average of squared gradients,

        cache = decay_rate * cache + (1 - decay_rate) * dw * dw
        next_w = w - learning_rate * dw / (sqrt(cache) + epsilon)

    Inputs:
    - w: tensor of any shape, the current weights.
    - dw: tensor of the shape of w, the gradient of the loss with respect to w.
    - config: dict with
      - learning_rate: the step size (default 1e-2).
      - decay_rate: in [0, 1), the decay of the moving average (default 0.99).
      - epsilon: a small number that keeps the division finite (default 1e-8).
      - cache: tensor of the shape of w, the moving average of dw * dw (default zeros).

    Returns a tuple of:
    - next_w: tensor of the shape of w, the updated weights.
    - config: the config dict, with defaults filled in and the new cache stored.
    """
    if config is None:
        config = {}
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("decay_rate", 0.99)
    config.setdefault("epsilon", 1e-8)
    config.setdefault("cache", torch.zeros_like(w))

    next_w = None
    # TODO: Update config['cache'] and compute next_w, as in the formula above.
    # BEGIN SOLUTION
    decay = config["decay_rate"]
    cache = decay * config["cache"] + (1 - decay) * dw * dw  # (same shape as w)
    next_w = w - config["learning_rate"] * dw / (cache.sqrt() + config["epsilon"])
    config["cache"] = cache
    # END SOLUTION
    return next_w, config


def adam(w: torch.Tensor, dw: torch.Tensor, config: dict | None = None) -> tuple[torch.Tensor, dict]:
    """
    Adam: moving averages of the gradient and of its square, with bias correction.

        t = t + 1
        m = beta1 * m + (1 - beta1) * dw            v = beta2 * v + (1 - beta2) * dw * dw
        m_hat = m / (1 - beta1 ** t)                 v_hat = v / (1 - beta2 ** t)
        next_w = w - learning_rate * m_hat / (sqrt(v_hat) + epsilon)

    Note that t is incremented *before* the bias correction, so the first step uses t = 1.

    Inputs:
    - w: tensor of any shape, the current weights.
    - dw: tensor of the shape of w, the gradient of the loss with respect to w.
    - config: dict with
      - learning_rate: the step size (default 1e-3).
      - beta1: the decay of the moving average of the gradient (default 0.9).
      - beta2: the decay of the moving average of the squared gradient (default 0.999).
      - epsilon: a small number that keeps the division finite (default 1e-8).
      - m, v: tensors of the shape of w, the two moving averages (default zeros).
      - t: int, the number of steps taken so far (default 0).

    Returns a tuple of:
    - next_w: tensor of the shape of w, the updated weights.
    - config: the config dict, with defaults filled in and the new m, v and t stored.
    """
    if config is None:
        config = {}
    config.setdefault("learning_rate", 1e-3)
    config.setdefault("beta1", 0.9)
    config.setdefault("beta2", 0.999)
    config.setdefault("epsilon", 1e-8)
    config.setdefault("m", torch.zeros_like(w))
    config.setdefault("v", torch.zeros_like(w))
    config.setdefault("t", 0)

    next_w = None
    # TODO: Update config['t'], config['m'] and config['v'], and compute next_w, as in the formulas above.
    # BEGIN SOLUTION
    beta1, beta2 = config["beta1"], config["beta2"]
    t = config["t"] + 1
    m = beta1 * config["m"] + (1 - beta1) * dw  # (same shape as w)
    v = beta2 * config["v"] + (1 - beta2) * dw * dw  # (same shape as w)
    m_hat = m / (1 - beta1**t)
    v_hat = v / (1 - beta2**t)
    next_w = w - config["learning_rate"] * m_hat / (v_hat.sqrt() + config["epsilon"])
    config["t"], config["m"], config["v"] = t, m, v
    # END SOLUTION
    return next_w, config


class Dropout:
    """
    Inverted dropout: in training, each unit is dropped (set to zero) with probability p and the kept
    units are scaled by 1 / (1 - p), so that the expected output equals the input; at test time the layer
    is the identity.
    """

    @staticmethod
    def forward(x: torch.Tensor, dropout_param: dict) -> tuple[torch.Tensor, tuple]:
        """
        Forward pass of inverted dropout.

        Inputs:
        - x: tensor of any shape.
        - dropout_param: dict with
          - p: in [0, 1), the probability of DROPPING each unit.
          - mode: 'train' (drop units) or 'test' (return the input unchanged).
          - seed: optional; if given (and not None), the random number generator is seeded with it first,
            so that the same mask is drawn every time (for gradient checks).

        Returns a tuple of:
        - out: tensor of the shape of x.
        - cache: (dropout_param, mask); in train mode mask is a tensor of the shape of x holding 0 for a
          dropped unit and 1 / (1 - p) for a kept one; in test mode it is None.
        """
        p, mode = dropout_param["p"], dropout_param["mode"]
        if not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be in [0, 1), got p={p}")
        if mode not in ("train", "test"):
            raise ValueError(f"Dropout: mode must be 'train' or 'test', got {mode!r}")
        if dropout_param.get("seed") is not None:
            torch.manual_seed(dropout_param["seed"])

        mask = None
        out = None
        if mode == "train":
            # TODO: Draw a mask that keeps each unit with probability 1 - p (torch.rand_like helps) and
            # holds 1 / (1 - p) for kept units, 0 for dropped ones; then out = x * mask.
            # BEGIN SOLUTION
            keep = torch.rand_like(x) >= p  # (same shape as x), True with probability 1 - p
            mask = keep.type_as(x) / (1 - p)
            out = x * mask
            # END SOLUTION
        else:
            # TODO: At test time dropout does nothing: out is x.
            # BEGIN SOLUTION
            out = x
            # END SOLUTION

        cache = (dropout_param, mask)
        return out, cache

    @staticmethod
    def backward(dout: torch.Tensor, cache: tuple) -> torch.Tensor:
        """
        Backward pass of inverted dropout.

        Inputs:
        - dout: tensor of any shape, the upstream gradient.
        - cache: (dropout_param, mask) from forward.

        Returns:
        - dx: tensor of the shape of dout, the gradient with respect to x.
        """
        dropout_param, mask = cache
        mode = dropout_param["mode"]

        dx = None
        if mode == "train":
            # TODO: The gradient flows only through the kept units, scaled as in forward.
            # BEGIN SOLUTION
            dx = dout * mask
            # END SOLUTION
        else:
            dx = dout
        return dx
