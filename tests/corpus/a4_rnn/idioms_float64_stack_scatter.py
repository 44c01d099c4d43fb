"""Alternative correct A4 code: a forward pass that stacks a list of states instead of filling h; embeddings by
index_select on the flattened indices and their gradient by scatter_add_; a loss computed in float64 inside and
converted back, with masked_fill; an LSTM backward carrying its states in a tuple; sampling with torch.argmax and
an LSTM cell state started lazily."""

import torch

from a4_rnn.lstm_layers import lstm_step_backward, lstm_step_forward
from a4_rnn.rnn_layers import rnn_step_forward

# file: a4_rnn/rnn_layers.py


def rnn_forward(x, h0, Wx, Wh, b):
    states, caches = [], []
    h = h0
    for x_t in x.unbind(dim=1):
        h, c = rnn_step_forward(x_t, h, Wx, Wh, b)
        states.append(h)
        caches.append(c)
    return torch.stack(states, dim=1), caches


def word_embedding_forward(x, W):
    out = W.index_select(0, x.reshape(-1)).reshape(*x.shape, W.shape[1])
    cache = (x, W)
    return out, cache


def word_embedding_backward(dout, cache):
    x, W = cache
    D = W.shape[1]
    index = x.reshape(-1, 1).expand(-1, D)
    return torch.zeros_like(W).scatter_add_(0, index, dout.reshape(-1, D))


def temporal_softmax_loss(x, y, mask):
    N = x.shape[0]
    s = x.double()
    s = s - s.amax(dim=2, keepdim=True)
    p = s.exp() / s.exp().sum(dim=2, keepdim=True)
    picked = p.gather(2, y.unsqueeze(2)).squeeze(2)
    loss = -picked.log().masked_fill(~mask, 0.0).sum() / N
    dx = p.clone()
    dx.scatter_add_(2, y.unsqueeze(2), torch.full_like(picked.unsqueeze(2), -1.0))
    dx = dx.masked_fill(~mask.unsqueeze(2), 0.0) / N
    return loss.to(x.dtype), dx.to(x.dtype)


# file: a4_rnn/lstm_layers.py


def lstm_backward(dh, cache):
    N, T, H = dh.shape
    carry = (torch.zeros_like(dh[:, 0]), torch.zeros_like(dh[:, 0]))
    dx_list, dWx, dWh, db = [], None, None, None
    for t in range(T - 1, -1, -1):
        dx_t, dh_prev, dc_prev, dWx_t, dWh_t, db_t = lstm_step_backward(dh[:, t] + carry[0], carry[1], cache[t])
        carry = (dh_prev, dc_prev)
        dx_list.insert(0, dx_t)
        dWx = dWx_t if dWx is None else dWx + dWx_t
        dWh = dWh_t if dWh is None else dWh + dWh_t
        db = db_t if db is None else db + db_t
    return torch.stack(dx_list, 1), carry[0], dWx, dWh, db


# file: a4_rnn/captioning.py


class CaptioningRNN:
    def sample(self, features, max_length=5):
        p = self.params
        h = torch.addmm(p["b_proj"], features, p["W_proj"])
        c = None
        word = torch.full((features.shape[0],), self._start, dtype=torch.long, device=features.device)
        chosen = []
        for _ in range(max_length):
            x = p["W_embed"][word]
            if self.cell_type == "lstm":
                h, c, _ = lstm_step_forward(x, h, torch.zeros_like(h) if c is None else c, p["Wx"], p["Wh"], p["b"])
            else:
                h, _ = rnn_step_forward(x, h, p["Wx"], p["Wh"], p["b"])
            word = torch.argmax(h @ p["W_vocab"] + p["b_vocab"], dim=1)
            chosen.append(word)
        return torch.stack(chosen, dim=1)
