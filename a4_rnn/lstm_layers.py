"""
Long short-term memory (LSTM), written by hand: one time step, then a whole sequence. The contract is that of
rnn_layers.py: `out, cache = forward(...)`, `backward(dout, cache)` returns one gradient per tensor argument of
forward, in that order, and each cache is built for you after your code.

An LSTM keeps two states per sequence, the hidden state h and the cell state c, both (N, H). At each step the
activations a = x Wx + prev_h Wh + b, of shape (N, 4H), are cut into four blocks of H columns, in this order:

    a[:, 0:H]   input gate   i = sigmoid(...)
    a[:, H:2H]  forget gate  f = sigmoid(...)
    a[:, 2H:3H] output gate  o = sigmoid(...)
    a[:, 3H:4H] block input  g = tanh(...)

    next_c = f * prev_c + i * g
    next_h = o * tanh(next_c)

Conventions for every function here (the grader checks them):
- return tensors in the dtype and on the device of the inputs;
- leave the inputs unchanged (work on new tensors);
- the step functions use no loop; lstm_forward and lstm_backward loop over the T time steps only (one loop),
  calling the step functions.

Rules the grader enforces in this file (see `grader list --rules`):
- lstm_step_forward, lstm_step_backward, lstm_forward, lstm_backward may not use:
  - torch.nn.RNN, torch.nn.LSTM, torch.nn.GRU, torch.nn.RNNCell, torch.nn.LSTMCell,
    torch.nn.GRUCell, torch.rnn_tanh, torch.rnn_tanh_cell, torch.rnn_relu, torch.rnn_relu_cell,
    torch.lstm, torch.lstm_cell, torch.gru, torch.gru_cell: PyTorch's recurrent layers compute the
    recurrence you are asked to write.
- lstm_step_forward, lstm_step_backward: no loops (for, while, comprehensions, map, filter,
  functools.reduce, itertools or recursion; loops in the helpers it calls count too).
- lstm_forward, lstm_backward: at most 1 loop (for, while, comprehensions, map, filter,
  functools.reduce, itertools or recursion; loops in the helpers it calls count too).
- every function: no autograd (requires_grad, .backward(), torch.autograd, torch.func): gradients
  are computed by hand.
- the file may use: only the modules torch, math, random, statistics, typing, abc, enum,
  collections, functools, itertools, dataclasses, a4_rnn, dlcv (a use of another module holds back
  every function of the file; an import that nothing uses only earns a warning).

Your code goes where a TODO comment asks for it; leave the rest of the file as it is.
"""

from __future__ import annotations

import torch


def lstm_step_forward(
    x: torch.Tensor,
    prev_h: torch.Tensor,
    prev_c: torch.Tensor,
    Wx: torch.Tensor,
    Wh: torch.Tensor,
    b: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, tuple]:
    """
    One time step of an LSTM.

    Inputs:
    - x: (N, D) inputs of this time step.
    - prev_h: (N, H) previous hidden state.
    - prev_c: (N, H) previous cell state.
    - Wx: (D, 4H) input-to-hidden weights, Wh: (H, 4H) hidden-to-hidden weights, b: (4H,) biases, the four
      gates' blocks side by side in the order i, f, o, g.

    Returns a tuple of:
    - next_h: (N, H) the next hidden state.
    - next_c: (N, H) the next cell state.
    - cache: (x, prev_h, prev_c, Wx, Wh, b, i, f, o, g, next_c), for the backward pass.

    torch.sigmoid and torch.tanh are fine.
    """
    next_h, next_c = None, None
    i, f, o, g = None, None, None, None  # the gates, each (N, H)
    # TODO: Compute the activations with two matrix products and the bias, cut them into the four gates (in the
    # order i, f, o, g), then next_c and next_h.
    # BEGIN SOLUTION
    H = prev_h.shape[1]
    a = x @ Wx + prev_h @ Wh + b  # (N, 4H)
    i = torch.sigmoid(a[:, :H])
    f = torch.sigmoid(a[:, H : 2 * H])
    o = torch.sigmoid(a[:, 2 * H : 3 * H])
    g = torch.tanh(a[:, 3 * H :])
    next_c = f * prev_c + i * g  # (N, H)
    next_h = o * torch.tanh(next_c)  # (N, H)
    # END SOLUTION
    cache = (x, prev_h, prev_c, Wx, Wh, b, i, f, o, g, next_c)
    return next_h, next_c, cache


def lstm_step_backward(dnext_h: torch.Tensor, dnext_c: torch.Tensor, cache: tuple) -> tuple[torch.Tensor, ...]:
    """
    Backward pass of one time step of an LSTM.

    Inputs:
    - dnext_h: (N, H) the gradient of the loss with respect to next_h.
    - dnext_c: (N, H) the gradient of the loss with respect to next_c (from the next time step).
    - cache: (x, prev_h, prev_c, Wx, Wh, b, i, f, o, g, next_c) as stored by lstm_step_forward.

    Returns a tuple of:
    - dx: (N, D), dprev_h: (N, H), dprev_c: (N, H), dWx: (D, 4H), dWh: (H, 4H), db: (4H,).

    next_c reaches the loss twice: directly (dnext_c) and through next_h = o * tanh(next_c). Add both. The
    derivative of sigmoid is s * (1 - s) and that of tanh is 1 - tanh^2, both from the values in the cache.
    """
    x, prev_h, prev_c, Wx, Wh, b, i, f, o, g, next_c = cache
    dx, dprev_h, dprev_c, dWx, dWh, db = None, None, None, None, None, None
    # TODO: The gradients of the cell state and of the four gates, then of the activations (N, 4H) in the order
    # i, f, o, g, then through the matrix products and the bias.
    # BEGIN SOLUTION
    tanh_c = torch.tanh(next_c)
    dc = dnext_c + dnext_h * o * (1 - tanh_c * tanh_c)  # (N, H)
    di, df, do, dg = dc * g, dc * prev_c, dnext_h * tanh_c, dc * i
    da = torch.cat(  # (N, 4H)
        [di * i * (1 - i), df * f * (1 - f), do * o * (1 - o), dg * (1 - g * g)], dim=1
    )
    dprev_c = dc * f
    dx = da @ Wx.t()  # (N, D)
    dprev_h = da @ Wh.t()  # (N, H)
    dWx = x.t() @ da  # (D, 4H)
    dWh = prev_h.t() @ da  # (H, 4H)
    db = da.sum(dim=0)  # (4H,)
    # END SOLUTION
    return dx, dprev_h, dprev_c, dWx, dWh, db


def lstm_forward(
    x: torch.Tensor, h0: torch.Tensor, Wx: torch.Tensor, Wh: torch.Tensor, b: torch.Tensor
) -> tuple[torch.Tensor, list]:
    """
    An LSTM over a whole sequence: lstm_step_forward at each of the T time steps. The initial cell state is zero.

    Inputs:
    - x: (N, T, D) the input sequences.
    - h0: (N, H) the initial hidden state.
    - Wx: (D, 4H), Wh: (H, 4H), b: (4H,) the weights and biases, shared by every time step.

    Returns a tuple of:
    - h: (N, T, H) the hidden states of every time step.
    - cache: the list of the T caches of lstm_step_forward, in order of time.
    """
    N, T, D = x.shape
    H = h0.shape[1]
    h = torch.zeros(N, T, H, dtype=x.dtype, device=x.device)
    caches = []
    # TODO: Start from c0 = 0 and loop over the T time steps (one loop), calling lstm_step_forward.
    # BEGIN SOLUTION
    prev_h, prev_c = h0, torch.zeros_like(h0)
    for t in range(T):
        prev_h, prev_c, step_cache = lstm_step_forward(x[:, t], prev_h, prev_c, Wx, Wh, b)
        h[:, t] = prev_h
        caches.append(step_cache)
    # END SOLUTION
    cache = caches
    return h, cache


def lstm_backward(dh: torch.Tensor, cache: list) -> tuple[torch.Tensor, ...]:
    """
    Backward pass of an LSTM over a whole sequence.

    Inputs:
    - dh: (N, T, H) the upstream gradients of every hidden state (from the layer above only).
    - cache: the list of step caches stored by lstm_forward.

    Returns a tuple of:
    - dx: (N, T, D), dh0: (N, H), dWx: (D, 4H), dWh: (H, 4H), db: (4H,).

    As in rnn_backward, each step's hidden state gets dh[:, t] plus what the next step sent back; the cell
    state's gradient is carried back too (zero after the last step). c0 is not a parameter: its gradient is not
    returned.
    """
    N, T, H = dh.shape
    x0, _, _, Wx, Wh, _, _, _, _, _, _ = cache[0]
    D = x0.shape[1]
    dx, dh0, dWx, dWh, db = None, None, None, None, None
    # TODO: Loop backwards over the T time steps (one loop), calling lstm_step_backward.
    # BEGIN SOLUTION
    dx = torch.zeros(N, T, D, dtype=dh.dtype, device=dh.device)
    dWx, dWh = torch.zeros_like(Wx), torch.zeros_like(Wh)
    db = torch.zeros(4 * H, dtype=dh.dtype, device=dh.device)
    dprev_h = torch.zeros(N, H, dtype=dh.dtype, device=dh.device)
    dprev_c = torch.zeros_like(dprev_h)
    for t in reversed(range(T)):
        dx_t, dprev_h, dprev_c, dWx_t, dWh_t, db_t = lstm_step_backward(dh[:, t] + dprev_h, dprev_c, cache[t])
        dx[:, t] = dx_t
        dWx, dWh, db = dWx + dWx_t, dWh + dWh_t, db + db_t
    dh0 = dprev_h
    # END SOLUTION
    return dx, dh0, dWx, dWh, db
