"""
Recurrent neural networks, written by hand: the vanilla RNN (one time step, then a whole sequence), word
embeddings, an affine layer applied at every time step, and the softmax loss over a sequence.

Every layer follows the contract of A3's layers, as functions:

    out, cache = something_forward(x, ...)       # cache: what the backward pass needs
    dx, ... = something_backward(dout, cache)    # one gradient per tensor argument of forward, in that order

where dout is the gradient of the loss with respect to out (the shape of out) and each gradient has the shape of
the tensor it belongs to. The cache of each forward pass is built for you after your code, from the names the
code before your TODO sets up: fill those in, and read the cache back in the backward pass as it is unpacked
there.

Shapes: N sequences in a minibatch, T time steps, D input features, H hidden units, V words in the vocabulary,
M outputs.

Conventions for every function here (the grader checks them):
- return tensors in the dtype and on the device of the inputs (create new tensors with `device=` and `dtype=`
  taken from an input, or with `torch.zeros_like` and friends);
- leave the inputs unchanged (work on new tensors);
- the step functions use no loop; rnn_forward and rnn_backward loop over the T time steps only (one loop),
  calling the step functions; every other function is vectorized (no loop).

Rules the grader enforces in this file (see `grader list --rules`):
- rnn_step_forward, rnn_step_backward, rnn_forward, rnn_backward may not use:
  - torch.nn.RNN, torch.nn.LSTM, torch.nn.GRU, torch.nn.RNNCell, torch.nn.LSTMCell,
    torch.nn.GRUCell, torch.rnn_tanh, torch.rnn_tanh_cell, torch.rnn_relu, torch.rnn_relu_cell,
    torch.lstm, torch.lstm_cell, torch.gru, torch.gru_cell: PyTorch's recurrent layers compute the
    recurrence you are asked to write.
- word_embedding_forward, word_embedding_backward may not use:
  - torch.nn.functional.embedding, torch.embedding, torch.nn.Embedding: it computes the word
    embedding you are asked to write (index W with x).
- temporal_affine_forward, temporal_affine_backward may not use:
  - torch.nn.functional.linear, torch.nn.Linear: it computes the affine layer you are asked to
    write.
- temporal_softmax_loss may not use:
  - torch.nn.functional.cross_entropy, torch.nn.functional.nll_loss, torch.nn.CrossEntropyLoss,
    torch.nn.NLLLoss: it computes the softmax (cross-entropy) loss you are asked to write.
  - torch.nn.functional.softmax, torch.nn.functional.log_softmax, torch.nn.Softmax,
    torch.nn.LogSoftmax: it computes the softmax probabilities (or their logarithms) you are asked
    to compute; torch.softmax and x.softmax are the same operation.
- rnn_step_forward, rnn_step_backward, word_embedding_forward, word_embedding_backward,
  temporal_affine_forward, temporal_affine_backward, temporal_softmax_loss: no loops (for, while,
  comprehensions, map, filter, functools.reduce, itertools or recursion; loops in the helpers it
  calls count too).
- rnn_forward, rnn_backward: at most 1 loop (for, while, comprehensions, map, filter,
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


def rnn_step_forward(
    x: torch.Tensor, prev_h: torch.Tensor, Wx: torch.Tensor, Wh: torch.Tensor, b: torch.Tensor
) -> tuple[torch.Tensor, tuple]:
    """
    One time step of a vanilla RNN with a tanh activation: next_h = tanh(x Wx + prev_h Wh + b).

    Inputs:
    - x: (N, D) inputs of this time step.
    - prev_h: (N, H) hidden state of the previous time step.
    - Wx: (D, H) input-to-hidden weights.
    - Wh: (H, H) hidden-to-hidden weights.
    - b: (H,) biases.

    Returns a tuple of:
    - next_h: (N, H) the next hidden state.
    - cache: (x, prev_h, Wx, Wh, b, next_h), for the backward pass.
    """
    next_h = None
    # TODO: Compute next_h with two matrix products, the bias and torch.tanh.
    # BEGIN SOLUTION
    next_h = torch.tanh(x @ Wx + prev_h @ Wh + b)  # (N, H)
    # END SOLUTION
    cache = (x, prev_h, Wx, Wh, b, next_h)
    return next_h, cache


def rnn_step_backward(dnext_h: torch.Tensor, cache: tuple) -> tuple[torch.Tensor, ...]:
    """
    Backward pass of one time step of a vanilla RNN.

    Inputs:
    - dnext_h: (N, H) the gradient of the loss with respect to next_h.
    - cache: (x, prev_h, Wx, Wh, b, next_h) as stored by rnn_step_forward.

    Returns a tuple of:
    - dx: (N, D), dprev_h: (N, H), dWx: (D, H), dWh: (H, H), db: (H,).

    The derivative of tanh(a) is 1 - tanh(a)^2, and next_h is tanh(a): you need not compute a again.
    """
    x, prev_h, Wx, Wh, b, next_h = cache
    dx, dprev_h, dWx, dWh, db = None, None, None, None, None
    # TODO: Backpropagate through tanh, then through the two matrix products and the bias.
    # BEGIN SOLUTION
    da = dnext_h * (1 - next_h * next_h)  # (N, H), the gradient of the pre-activation
    dx = da @ Wx.t()  # (N, D)
    dprev_h = da @ Wh.t()  # (N, H)
    dWx = x.t() @ da  # (D, H)
    dWh = prev_h.t() @ da  # (H, H)
    db = da.sum(dim=0)  # (H,)
    # END SOLUTION
    return dx, dprev_h, dWx, dWh, db


def rnn_forward(
    x: torch.Tensor, h0: torch.Tensor, Wx: torch.Tensor, Wh: torch.Tensor, b: torch.Tensor
) -> tuple[torch.Tensor, tuple]:
    """
    A vanilla RNN over a whole sequence: rnn_step_forward at each of the T time steps, the hidden state of one
    step feeding the next.

    Inputs:
    - x: (N, T, D) the input sequences.
    - h0: (N, H) the initial hidden state.
    - Wx: (D, H), Wh: (H, H), b: (H,) the weights and biases, shared by every time step.

    Returns a tuple of:
    - h: (N, T, H) the hidden states of every time step (h[:, t] is the state after step t).
    - cache: the list of the T caches of rnn_step_forward, in order of time.
    """
    N, T, D = x.shape
    H = h0.shape[1]
    h = torch.zeros(N, T, H, dtype=x.dtype, device=x.device)
    caches = []
    # TODO: Loop over the T time steps (one loop): call rnn_step_forward, store its state in h[:, t] and append its
    # cache to caches.
    # BEGIN SOLUTION
    prev_h = h0
    for t in range(T):
        prev_h, step_cache = rnn_step_forward(x[:, t], prev_h, Wx, Wh, b)
        h[:, t] = prev_h
        caches.append(step_cache)
    # END SOLUTION
    cache = caches
    return h, cache


def rnn_backward(dh: torch.Tensor, cache: list) -> tuple[torch.Tensor, ...]:
    """
    Backward pass of a vanilla RNN over a whole sequence.

    Inputs:
    - dh: (N, T, H) the upstream gradients of every hidden state (from the layer above only: the gradient each
      state passes to the next time step is not in it).
    - cache: the list of step caches stored by rnn_forward.

    Returns a tuple of:
    - dx: (N, T, D), dh0: (N, H), dWx: (D, H), dWh: (H, H), db: (H,).

    Walk back from the last step: the gradient of h[:, t] is dh[:, t] plus what step t + 1 sent back. The
    weights are shared by every step, so their gradients add up over the steps.
    """
    N, T, H = dh.shape
    x0, _, Wx, Wh, _, _ = cache[0]
    D = x0.shape[1]
    dx, dh0, dWx, dWh, db = None, None, None, None, None
    # TODO: Loop backwards over the T time steps (one loop), calling rnn_step_backward.
    # BEGIN SOLUTION
    dx = torch.zeros(N, T, D, dtype=dh.dtype, device=dh.device)
    dWx, dWh = torch.zeros_like(Wx), torch.zeros_like(Wh)
    db = torch.zeros(H, dtype=dh.dtype, device=dh.device)
    dprev_h = torch.zeros(N, H, dtype=dh.dtype, device=dh.device)
    for t in reversed(range(T)):
        dx_t, dprev_h, dWx_t, dWh_t, db_t = rnn_step_backward(dh[:, t] + dprev_h, cache[t])
        dx[:, t] = dx_t
        dWx, dWh, db = dWx + dWx_t, dWh + dWh_t, db + db_t
    dh0 = dprev_h
    # END SOLUTION
    return dx, dh0, dWx, dWh, db


def word_embedding_forward(x: torch.Tensor, W: torch.Tensor) -> tuple[torch.Tensor, tuple]:
    """
    Word embeddings: each word index of x becomes its row of W (a vector of D numbers).

    Inputs:
    - x: (N, T) int64 word indices, each in 0..V-1.
    - W: (V, D) the word vectors, one row per word of the vocabulary.

    Returns a tuple of:
    - out: (N, T, D) with out[n, t] = W[x[n, t]].
    - cache: (x, W), for the backward pass.
    """
    out = None
    # TODO: Index W with x (one line, no loop).
    # BEGIN SOLUTION
    out = W[x]  # (N, T, D)
    # END SOLUTION
    cache = (x, W)
    return out, cache


def word_embedding_backward(dout: torch.Tensor, cache: tuple) -> torch.Tensor:
    """
    Backward pass of word embeddings: the gradient of W (x, being indices, has none).

    Inputs:
    - dout: (N, T, D) the upstream gradient.
    - cache: (x, W) as stored by word_embedding_forward.

    Returns:
    - dW: (V, D). A word that appears several times in x receives the sum of the gradients of all its
      occurrences: add them up (torch.Tensor.index_add_ on a tensor of zeros does it); an assignment such as
      dW[x] = dout keeps only one of them.
    """
    x, W = cache
    dW = None
    # TODO: Accumulate dout into the rows of a zero (V, D) tensor given by x (no loop).
    # BEGIN SOLUTION
    D = W.shape[1]
    dW = torch.zeros_like(W).index_add_(0, x.reshape(-1), dout.reshape(-1, D))  # (V, D)
    # END SOLUTION
    return dW


def temporal_affine_forward(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, tuple]:
    """
    An affine layer applied at every time step: out[n, t] = x[n, t] w + b.

    Inputs:
    - x: (N, T, D) inputs.
    - w: (D, M) weights.
    - b: (M,) biases.

    Returns a tuple of:
    - out: (N, T, M).
    - cache: (x, w, b), for the backward pass.
    """
    out = None
    # TODO: One matrix product over all N * T vectors at once (reshape x to (N * T, D) and back), plus b.
    # BEGIN SOLUTION
    N, T, D = x.shape
    out = (x.reshape(N * T, D) @ w + b).reshape(N, T, -1)  # (N, T, M)
    # END SOLUTION
    cache = (x, w, b)
    return out, cache


def temporal_affine_backward(dout: torch.Tensor, cache: tuple) -> tuple[torch.Tensor, ...]:
    """
    Backward pass of the temporal affine layer.

    Inputs:
    - dout: (N, T, M) the upstream gradient.
    - cache: (x, w, b) as stored by temporal_affine_forward.

    Returns a tuple of:
    - dx: (N, T, D), dw: (D, M), db: (M,). The weights are shared by every time step: their gradients sum over
      the N * T positions.
    """
    x, w, b = cache
    dx, dw, db = None, None, None
    # TODO: Reshape to (N * T, ...) matrices, then as A3's Linear.backward.
    # BEGIN SOLUTION
    N, T, D = x.shape
    M = w.shape[1]
    dout2 = dout.reshape(N * T, M)  # (N*T, M)
    dx = (dout2 @ w.t()).reshape(N, T, D)  # (N, T, D)
    dw = x.reshape(N * T, D).t() @ dout2  # (D, M)
    db = dout2.sum(dim=0)  # (M,)
    # END SOLUTION
    return dx, dw, db


def temporal_softmax_loss(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """
    The softmax (cross-entropy) loss over sequences of scores, counting only the time steps mask selects.

    At each time step of each sequence, x[n, t] holds a score per word of the vocabulary and y[n, t] the right
    word. The loss is the sum, over the steps where mask[n, t] is True, of -log(softmax(x[n, t])[y[n, t]]),
    divided by N (the number of sequences, not the number of steps counted): padding steps (mask False) add
    nothing to the loss and get a zero gradient.

    Inputs:
    - x: (N, T, V) scores.
    - y: (N, T) int64 right words, each in 0..V-1.
    - mask: (N, T) bool, True where the step counts.

    Returns a tuple of:
    - loss: 0-dim tensor.
    - dx: (N, T, V) the gradient of the loss with respect to x.

    Subtract each row's maximum before exponentiating, so that exp never overflows.
    """
    loss, dx = None, None
    # TODO: Softmax probabilities over V, the masked sum of -log p of the right words divided by N, and its
    # gradient (p minus one-hot of y, masked, divided by N). No loop.
    # BEGIN SOLUTION
    N, T, V = x.shape
    shifted = x - x.max(dim=2, keepdim=True).values  # (N, T, V)
    log_p = shifted - shifted.exp().sum(dim=2, keepdim=True).log()  # (N, T, V)
    m = mask.to(x.dtype)  # (N, T)
    loss = -(log_p.gather(2, y[:, :, None])[:, :, 0] * m).sum() / N
    dx = log_p.exp()  # (N, T, V)
    dx.scatter_add_(2, y[:, :, None], -torch.ones_like(x[:, :, :1]))
    dx = dx * m[:, :, None] / N
    # END SOLUTION
    return loss, dx
