"""Alternative correct A4 code: an LSTM step with one weight matrix per gate (Wx and Wh cut with chunk), gradients
of each gate's weights put together with torch.cat; an rnn_backward that keeps lists and stacks them at the end;
addmm, einsum, index_put_ with accumulate=True, logsumexp and F.one_hot."""

import torch

# file: a4_rnn/rnn_layers.py


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    next_h = torch.addmm(b, x, Wx).addmm(prev_h, Wh).tanh()
    cache = (x, prev_h, Wx, Wh, b, next_h)
    return next_h, cache


def rnn_step_backward(dnext_h, cache):
    x, prev_h, Wx, Wh, b, next_h = cache
    da = (1 - next_h.pow(2)) * dnext_h
    return torch.mm(da, Wx.T), torch.mm(da, Wh.T), torch.mm(x.T, da), torch.mm(prev_h.T, da), da.sum(0)


def rnn_backward(dh, cache):
    T = dh.shape[1]
    dxs, dWx, dWh, db = [None] * T, 0, 0, 0
    carried = torch.zeros_like(dh[:, 0])
    t = T - 1
    while t >= 0:
        dxs[t], carried, dWx_t, dWh_t, db_t = rnn_step_backward(dh[:, t] + carried, cache[t])
        dWx, dWh, db = dWx + dWx_t, dWh + dWh_t, db + db_t
        t -= 1
    return torch.stack(dxs, dim=1), carried, dWx, dWh, db


def word_embedding_backward(dout, cache):
    x, W = cache
    dW = torch.zeros(W.shape, dtype=dout.dtype, device=dout.device)
    dW.index_put_((x,), dout, accumulate=True)
    return dW


def temporal_affine_forward(x, w, b):
    out = torch.einsum("ntd,dm->ntm", x, w) + b
    cache = (x, w, b)
    return out, cache


def temporal_affine_backward(dout, cache):
    x, w, b = cache
    return torch.einsum("ntm,dm->ntd", dout, w), torch.einsum("ntd,ntm->dm", x, dout), dout.sum(dim=(0, 1))


def temporal_softmax_loss(x, y, mask):
    N, T, V = x.shape
    log_p = x - torch.logsumexp(x, dim=-1, keepdim=True)
    onehot = torch.nn.functional.one_hot(y, V).to(x.dtype)
    keep = mask.unsqueeze(-1).to(x.dtype)
    loss = -(log_p * onehot * keep).sum() / N
    dx = (log_p.exp() - onehot) * keep / N
    return loss, dx


# file: a4_rnn/lstm_layers.py


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    Wxi, Wxf, Wxo, Wxg = Wx.chunk(4, dim=1)
    Whi, Whf, Who, Whg = Wh.chunk(4, dim=1)
    bi, bf, bo, bg = b.chunk(4)
    i = torch.sigmoid(x @ Wxi + prev_h @ Whi + bi)
    f = torch.sigmoid(x @ Wxf + prev_h @ Whf + bf)
    o = torch.sigmoid(x @ Wxo + prev_h @ Who + bo)
    g = torch.tanh(x @ Wxg + prev_h @ Whg + bg)
    next_c = f * prev_c + i * g
    next_h = o * torch.tanh(next_c)
    cache = (x, prev_h, prev_c, Wx, Wh, b, i, f, o, g, next_c)
    return next_h, next_c, cache


def lstm_step_backward(dnext_h, dnext_c, cache):
    x, prev_h, prev_c, Wx, Wh, b, i, f, o, g, next_c = cache
    Wxi, Wxf, Wxo, Wxg = Wx.chunk(4, dim=1)
    Whi, Whf, Who, Whg = Wh.chunk(4, dim=1)
    tanh_c = torch.tanh(next_c)
    dc = dnext_c + dnext_h * o * (1 - tanh_c**2)
    dai = dc * g * i * (1 - i)
    daf = dc * prev_c * f * (1 - f)
    dao = dnext_h * tanh_c * o * (1 - o)
    dag = dc * i * (1 - g**2)
    dx = dai @ Wxi.T + daf @ Wxf.T + dao @ Wxo.T + dag @ Wxg.T
    dprev_h = dai @ Whi.T + daf @ Whf.T + dao @ Who.T + dag @ Whg.T
    dWx = torch.cat([x.T @ dai, x.T @ daf, x.T @ dao, x.T @ dag], dim=1)
    dWh = torch.cat([prev_h.T @ dai, prev_h.T @ daf, prev_h.T @ dao, prev_h.T @ dag], dim=1)
    db = torch.cat([dai.sum(0), daf.sum(0), dao.sum(0), dag.sum(0)])
    return dx, dprev_h, dc * f, dWx, dWh, db
