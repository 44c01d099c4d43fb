"""The course's own A4 layers, staff only: when a composite that calls one fails and the student's own failed its
checks, the grader judges the composite again with these in its place ([parts.blocks] in assignment.toml). Each
reads and writes the cache in the layout the kit's given lines build, so it works beside the student's other
functions. Self-contained: imports torch only, never calls student code."""

from __future__ import annotations

import torch


def _d(*ts):
    return [t.detach() for t in ts]


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    x, prev_h, Wx, Wh, b = _d(x, prev_h, Wx, Wh, b)
    next_h = torch.tanh(x @ Wx + prev_h @ Wh + b)
    return next_h, (x, prev_h, Wx, Wh, b, next_h)


def rnn_step_backward(dnext_h, cache):
    x, prev_h, Wx, Wh, b, next_h = cache
    da = dnext_h.detach() * (1 - next_h * next_h)
    return da @ Wx.t(), da @ Wh.t(), x.t() @ da, prev_h.t() @ da, da.sum(dim=0)


def rnn_forward(x, h0, Wx, Wh, b):
    N, T, _ = x.shape
    h = torch.zeros(N, T, h0.shape[1], dtype=x.dtype, device=x.device)
    caches, prev = [], h0.detach()
    for t in range(T):
        prev, cache = rnn_step_forward(x[:, t], prev, Wx, Wh, b)
        h[:, t] = prev
        caches.append(cache)
    return h, caches


def _sequence_backward(dh, caches, step, lstm: bool):
    N, T, H = dh.shape
    x0, Wx, Wh = caches[0][0], caches[0][3 if lstm else 2], caches[0][4 if lstm else 3]
    dx = torch.zeros(N, T, x0.shape[1], dtype=dh.dtype, device=dh.device)
    dWx, dWh = torch.zeros_like(Wx), torch.zeros_like(Wh)
    db = torch.zeros(Wx.shape[1], dtype=dh.dtype, device=dh.device)
    dprev_h, dprev_c = torch.zeros(N, H, dtype=dh.dtype, device=dh.device), None
    if lstm:
        dprev_c = torch.zeros_like(dprev_h)
    for t in reversed(range(T)):
        if lstm:
            dx_t, dprev_h, dprev_c, dWx_t, dWh_t, db_t = step(dh[:, t].detach() + dprev_h, dprev_c, caches[t])
        else:
            dx_t, dprev_h, dWx_t, dWh_t, db_t = step(dh[:, t].detach() + dprev_h, caches[t])
        dx[:, t] = dx_t
        dWx, dWh, db = dWx + dWx_t, dWh + dWh_t, db + db_t
    return dx, dprev_h, dWx, dWh, db


def rnn_backward(dh, cache):
    return _sequence_backward(dh, cache, rnn_step_backward, lstm=False)


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    x, prev_h, prev_c, Wx, Wh, b = _d(x, prev_h, prev_c, Wx, Wh, b)
    H = prev_h.shape[1]
    a = x @ Wx + prev_h @ Wh + b
    i, f, o = (torch.sigmoid(a[:, k * H : (k + 1) * H]) for k in range(3))
    g = torch.tanh(a[:, 3 * H :])
    next_c = f * prev_c + i * g
    next_h = o * torch.tanh(next_c)
    return next_h, next_c, (x, prev_h, prev_c, Wx, Wh, b, i, f, o, g, next_c)


def lstm_step_backward(dnext_h, dnext_c, cache):
    x, prev_h, prev_c, Wx, Wh, b, i, f, o, g, next_c = cache
    dnext_h, dnext_c = dnext_h.detach(), dnext_c.detach()
    tc = torch.tanh(next_c)
    dc = dnext_c + dnext_h * o * (1 - tc * tc)
    da = torch.cat(
        [dc * g * i * (1 - i), dc * prev_c * f * (1 - f), dnext_h * tc * o * (1 - o), dc * i * (1 - g * g)], 1
    )
    return da @ Wx.t(), da @ Wh.t(), dc * f, x.t() @ da, prev_h.t() @ da, da.sum(dim=0)


def lstm_forward(x, h0, Wx, Wh, b):
    N, T, _ = x.shape
    h = torch.zeros(N, T, h0.shape[1], dtype=x.dtype, device=x.device)
    caches, prev_h = [], h0.detach()
    prev_c = torch.zeros_like(prev_h)
    for t in range(T):
        prev_h, prev_c, cache = lstm_step_forward(x[:, t], prev_h, prev_c, Wx, Wh, b)
        h[:, t] = prev_h
        caches.append(cache)
    return h, caches


def lstm_backward(dh, cache):
    return _sequence_backward(dh, cache, lstm_step_backward, lstm=True)


def word_embedding_forward(x, W):
    W = W.detach()
    return W[x], (x, W)


def word_embedding_backward(dout, cache):
    x, W = cache
    return torch.zeros_like(W).index_add_(0, x.reshape(-1), dout.detach().reshape(-1, W.shape[1]))


def temporal_affine_forward(x, w, b):
    x, w, b = _d(x, w, b)
    return x @ w + b, (x, w, b)


def temporal_affine_backward(dout, cache):
    x, w, b = cache
    N, T, D = x.shape
    d2 = dout.detach().reshape(N * T, -1)
    return (d2 @ w.t()).reshape(N, T, D), x.reshape(N * T, D).t() @ d2, d2.sum(dim=0)


def temporal_softmax_loss(x, y, mask):
    x = x.detach()
    N = x.shape[0]
    log_p = x - torch.logsumexp(x, dim=2, keepdim=True)
    m = mask.to(x.dtype)
    loss = -(log_p.gather(2, y[:, :, None])[:, :, 0] * m).sum() / N
    dx = log_p.exp().scatter_add(2, y[:, :, None], -torch.ones_like(x[:, :, :1]))
    return loss, dx * m[:, :, None] / N


ORACLES = {
    f.__name__: f
    for f in (
        rnn_step_forward,
        rnn_step_backward,
        rnn_forward,
        rnn_backward,
        lstm_step_forward,
        lstm_step_backward,
        lstm_forward,
        lstm_backward,
        word_embedding_forward,
        word_embedding_backward,
        temporal_affine_forward,
        temporal_affine_backward,
        temporal_softmax_loss,
    )
}
