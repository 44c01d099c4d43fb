"""A4's expected values, restated with PyTorch's own operations in float64 in the judge (autograd differentiates
them for the backward checks). Each returns a tuple of outputs; `detach_carry` variants cut the path from one
step to the next (the gradient of a backward pass that forgets to add what the next step sends back)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def rnn_step(x, prev_h, Wx, Wh, b):
    return (torch.tanh(x @ Wx + prev_h @ Wh + b),)


def rnn(x, h0, Wx, Wh, b, detach_carry: bool = False):
    h, states = h0, []
    for t in range(x.shape[1]):
        (h,) = rnn_step(x[:, t], h.detach() if detach_carry else h, Wx, Wh, b)
        states.append(h)
    return (torch.stack(states, dim=1),)


def gates(a, H, order=("i", "f", "o", "g")):
    """The four gate blocks of the activations a (N, 4H), read in `order`, returned as (i, f, o, g)."""
    blocks = dict(zip(order, a.split(H, dim=1)))
    return (torch.sigmoid(blocks["i"]), torch.sigmoid(blocks["f"]), torch.sigmoid(blocks["o"]), torch.tanh(blocks["g"]))


def lstm_step(x, prev_h, prev_c, Wx, Wh, b, order=("i", "f", "o", "g")):
    i, f, o, g = gates(x @ Wx + prev_h @ Wh + b, prev_h.shape[1], order)
    next_c = f * prev_c + i * g
    return o * torch.tanh(next_c), next_c


def lstm(x, h0, Wx, Wh, b, detach_carry: bool = False, c0=None):
    h, c, states = h0, torch.zeros_like(h0) if c0 is None else c0, []
    for t in range(x.shape[1]):
        if detach_carry:
            h, c = h.detach(), c.detach()
        h, c = lstm_step(x[:, t], h, c, Wx, Wh, b)
        states.append(h)
    return (torch.stack(states, dim=1),)


def embedding(W, x):
    return (W[x],)


def temporal_affine(x, w, b):
    return (x @ w + b,)


def temporal_softmax_loss(x, y, mask, divide_by=None):
    """The masked sum of cross-entropies over (N, T), divided by N (or by `divide_by`)."""
    N, T, V = x.shape
    ce = F.cross_entropy(x.reshape(N * T, V), y.reshape(N * T), reduction="none").reshape(N, T)
    return (ce * mask).sum() / (N if divide_by is None else divide_by)


def captioning_loss(params, features, captions, null: int, cell_type: str):
    p = params
    cin, cout = captions[:, :-1], captions[:, 1:]
    h0 = features @ p["W_proj"] + p["b_proj"]
    (x,) = embedding(p["W_embed"], cin)
    (h,) = (rnn if cell_type == "rnn" else lstm)(x, h0, p["Wx"], p["Wh"], p["b"])
    (scores,) = temporal_affine(h, p["W_vocab"], p["b_vocab"])
    return temporal_softmax_loss(scores, cout, (cout != null).to(scores.dtype))


def captioning_sample(params, features, start: int, max_length: int, cell_type: str):
    p = params
    N = features.shape[0]
    h = features @ p["W_proj"] + p["b_proj"]
    c = torch.zeros_like(h)
    word = torch.full((N,), start, dtype=torch.int64)
    out = []
    for _ in range(max_length):
        x = p["W_embed"][word]
        if cell_type == "rnn":
            (h,) = rnn_step(x, h, p["Wx"], p["Wh"], p["b"])
        else:
            h, c = lstm_step(x, h, c, p["Wx"], p["Wh"], p["b"])
        word = (h @ p["W_vocab"] + p["b_vocab"]).argmax(dim=1)
        out.append(word)
    return torch.stack(out, dim=1)
