"""Public checks for A4's vanilla RNN, word embeddings and temporal layers (rnn_layers.py). Expected values come
from expected.py (PyTorch's own operations, differentiated by autograd, in float64, in the judge). Hidden variants
live in hidden.py."""

from __future__ import annotations

import torch

from grader.checks import CheckFailed, check, variant
from grader.judging import cpu64, fmt_shape, vjp

from . import expected as E
from .layers import BWD, FWD, Layer, bound, describe, judge_backward, judge_forward, kit_cache

f64 = torch.float64


def step_cache(x, prev_h, Wx, Wh, b):
    return (x, prev_h, Wx, Wh, b, E.rnn_step(x, prev_h, Wx, Wh, b)[0])


def sequence_cache(x, h0, Wx, Wh, b):
    (h,) = E.rnn(x, h0, Wx, Wh, b)
    prev = [h0, *h.unbind(1)[:-1]]
    return [(x[:, t], prev[t], Wx, Wh, b, h[:, t]) for t in range(x.shape[1])]


RNN_STEP = Layer(
    "rnn_step_forward",
    "rnn_step_backward",
    ("x", "prev_h", "Wx", "Wh", "b"),
    ("next_h",),
    ("x", "prev_h", "Wx", "Wh", "b"),
    reference=E.rnn_step,
    cache=step_cache,
    forward_mistakes={
        "the bias b is not added": lambda x, h, Wx, Wh, b: (torch.tanh(x @ Wx + h @ Wh),),
        "prev_h Wh is missing: the previous state must feed the next": lambda x, h, Wx, Wh, b: (
            torch.tanh(x @ Wx + b),
        ),
        "tanh is missing": lambda x, h, Wx, Wh, b: (x @ Wx + h @ Wh + b,),
    },
    backward_mistakes={
        "dx": {
            "the derivative of tanh is missing: multiply dnext_h by 1 - next_h ** 2 first": lambda v: (
                v.dnext_h @ v.Wx.t()
            ),
            "the derivative of tanh is taken as 1 - next_h; it is 1 - next_h ** 2": lambda v: (
                (v.dnext_h * (1 - torch.tanh(v.x @ v.Wx + v.prev_h @ v.Wh + v.b))) @ v.Wx.t()
            ),
        },
    },
    hints={"next_h": "next_h is (N, H): tanh(x Wx + prev_h Wh + b)."},
)

NOT_CARRIED = (
    "the gradient a step sends back to the previous one is not added to dh[:, t]: each hidden state gets dh[:, t] "
    "plus what the next step sent back"
)


def not_carried(v) -> dict:
    """The gradients of a backward pass that forgets what each step sends back to the previous one."""
    grads = vjp(lambda *ts: (E.rnn(*ts, detach_carry=True)[0] * v.dh).sum(), v.inputs)
    return dict(zip(("dx", "dh0", "dWx", "dWh", "db"), grads))


RNN = Layer(
    "rnn_forward",
    "rnn_backward",
    ("x", "h0", "Wx", "Wh", "b"),
    ("h",),
    ("x", "h0", "Wx", "Wh", "b"),
    reference=E.rnn,
    cache=sequence_cache,
    forward_mistakes={
        "h0 is ignored: the first step starts from h0": lambda x, h0, Wx, Wh, b: E.rnn(
            x, torch.zeros_like(h0), Wx, Wh, b
        ),
        "every step starts from h0: each step's state must feed the next": lambda x, h0, Wx, Wh, b: (
            torch.stack([E.rnn_step(x[:, t], h0, Wx, Wh, b)[0] for t in range(x.shape[1])], dim=1),
        ),
    },
    backward_mistakes={g: {NOT_CARRIED: lambda v, g=g: not_carried(v)[g]} for g in ("dx", "dWx", "dWh", "db")},
    hints={"h": "h is (N, T, H): h[:, t] is the state after step t."},
)


def rnn_problem(ctx, N, T, D, H, dtype, seq: bool):
    x = ctx.randn(N, T, D, dtype=dtype) if seq else ctx.randn(N, D, dtype=dtype)
    return [
        x,
        ctx.randn(N, H, dtype=dtype, scale=0.5),
        ctx.randn(D, H, dtype=dtype, scale=0.4),
        ctx.randn(H, H, dtype=dtype, scale=0.4),
        ctx.randn(H, dtype=dtype, scale=0.3),
    ]


@check("a4.rnn.rnn_step_forward", function="rnn_step_forward", N=3, D=10, H=4, dtype=f64)
def rnn_step_forward(ctx, N, D, H, dtype):
    """rnn_step_forward: next_h = tanh(x Wx + prev_h Wh + b)"""
    x, h, Wx, Wh, b = rnn_problem(ctx, N, 1, D, H, dtype, seq=False)
    judge_forward(ctx, RNN_STEP, [x, h, Wx, Wh, b], describe({"x": x, "prev_h": h}))


@check("a4.rnn.rnn_step_backward", function="rnn_step_backward", N=4, D=5, H=6, dtype=f64)
def rnn_step_backward(ctx, N, D, H, dtype):
    """rnn_step_backward: dx, dprev_h, dWx, dWh, db match autograd"""
    x, h, Wx, Wh, b = rnn_problem(ctx, N, 1, D, H, dtype, seq=False)
    judge_backward(ctx, RNN_STEP, [x, h, Wx, Wh, b], describe({"x": x, "prev_h": h}))


@check("a4.rnn.rnn_forward", function="rnn_forward", N=2, T=3, D=4, H=5, dtype=f64)
def rnn_forward(ctx, N, T, D, H, dtype):
    """rnn_forward: the hidden state of every time step"""
    x, h0, Wx, Wh, b = rnn_problem(ctx, N, T, D, H, dtype, seq=True)
    judge_forward(ctx, RNN, [x, h0, Wx, Wh, b], describe({"x": x, "h0": h0}))


@check("a4.rnn.rnn_backward", function="rnn_backward", N=2, T=6, D=4, H=5, dtype=f64)
def rnn_backward(ctx, N, T, D, H, dtype):
    """rnn_backward: dx, dh0, dWx, dWh, db match autograd through every time step"""
    x, h0, Wx, Wh, b = rnn_problem(ctx, N, T, D, H, dtype, seq=True)
    judge_backward(ctx, RNN, [x, h0, Wx, Wh, b], describe({"x": x, "h0": h0}))


# ---- word embeddings ----------------------------------------------------------------------------------

EMBEDDING = Layer(
    "word_embedding_forward",
    "word_embedding_backward",
    ("x", "W"),
    ("out",),
    ("W",),
    reference=lambda x, W: E.embedding(W, x),
    cache=lambda x, W: (x, W),
    hints={"dW": "dW is (V, D), the shape of W: add each dout[n, t] to row x[n, t] (index_add_)."},
)


def embedding_problem(ctx, N, T, V, D, dtype):
    x = ctx.randint(0, V, (N, T))
    x[0, 0] = x[-1, -1] = x[0, -1]  # a word seen several times
    return [x, ctx.randn(V, D, dtype=dtype)]


@check("a4.rnn.word_embedding_forward", function="word_embedding_forward", N=2, T=4, V=5, D=3, dtype=f64)
def word_embedding_forward(ctx, N, T, V, D, dtype):
    """word_embedding_forward: out[n, t] = W[x[n, t]]"""
    x, W = embedding_problem(ctx, N, T, V, D, dtype)
    judge_forward(ctx, EMBEDDING, [x, W], describe({"x": x, "W": W}))


@check("a4.rnn.word_embedding_backward", function="word_embedding_backward", N=3, T=5, V=4, D=6, dtype=f64)
def word_embedding_backward(ctx, N, T, V, D, dtype):
    """word_embedding_backward: a repeated word's gradients add up"""
    x, W = embedding_problem(ctx, N, T, V, D, dtype)
    try:
        judge_backward(ctx, EMBEDDING, [x, W], describe({"x": x, "W": W}))
    except CheckFailed:
        dout = ctx.randn(N, T, D, dtype=dtype)
        dW = ctx.call("word_embedding_backward", dout, kit_cache(ctx, EMBEDDING, [x, W]))
        if isinstance(dW, torch.Tensor) and dW.shape == W.shape and assigned(cpu64(dW), x.cpu(), cpu64(dout)):
            ctx.fail(
                "dW: each row holds the gradient of one occurrence of its word only. Likely bug: dW[x] = dout "
                "assigns, so a word seen several times keeps one of its gradients; add them all up "
                "(dW.index_add_(0, x.flatten(), dout.reshape(-1, D)) on zeros).",
                mistakes=[ASSIGNED],
            )
        raise


ASSIGNED = "dW is assigned (dW[x] = dout), not accumulated: a repeated word keeps one of its gradients"


def assigned(dW: torch.Tensor, x: torch.Tensor, dout: torch.Tensor) -> bool:
    """Whether every row of dW of a word in x is the dout of one of its occurrences (and repeated words exist)."""
    flat, d = x.reshape(-1), dout.reshape(-1, dout.shape[-1])
    if flat.unique().numel() == flat.numel():
        return False
    for w in flat.unique().tolist():
        rows = d[flat == w]
        if not any(bool(torch.allclose(dW[w], r, rtol=1e-5, atol=1e-7)) for r in rows):
            return False
    return True


# ---- temporal affine -----------------------------------------------------------------------------------

AFFINE = Layer(
    "temporal_affine_forward",
    "temporal_affine_backward",
    ("x", "w", "b"),
    ("out",),
    ("x", "w", "b"),
    reference=E.temporal_affine,
    cache=lambda x, w, b: (x, w, b),
    forward_mistakes={"the bias b is not added": lambda x, w, b: (x @ w,)},
    backward_mistakes={"db": {"db sums over one axis only: sum dout over N and T": lambda v: v.dout.sum(0)}},
    hints={"dw": "dw is (D, M): the sum over every (n, t) of x[n, t]^T dout[n, t]."},
)


@check("a4.rnn.temporal_affine_forward", function="temporal_affine_forward", N=2, T=3, D=4, M=5, dtype=f64)
def temporal_affine_forward(ctx, N, T, D, M, dtype):
    """temporal_affine_forward: out[n, t] = x[n, t] w + b"""
    x, w, b = ctx.randn(N, T, D, dtype=dtype), ctx.randn(D, M, dtype=dtype), ctx.randn(M, dtype=dtype)
    judge_forward(ctx, AFFINE, [x, w, b], describe({"x": x, "w": w}))


@check("a4.rnn.temporal_affine_backward", function="temporal_affine_backward", N=3, T=4, D=5, M=2, dtype=f64)
def temporal_affine_backward(ctx, N, T, D, M, dtype):
    """temporal_affine_backward: dx, dw, db match autograd"""
    x, w, b = ctx.randn(N, T, D, dtype=dtype), ctx.randn(D, M, dtype=dtype), ctx.randn(M, dtype=dtype)
    judge_backward(ctx, AFFINE, [x, w, b], describe({"x": x, "w": w}))


# ---- temporal softmax loss ---------------------------------------------------------------------------------


@check("a4.rnn.temporal_softmax_loss", function="temporal_softmax_loss", N=4, T=5, V=6, p=0.6, dtype=f64, scale=1.0)
def temporal_softmax_loss(ctx, N, T, V, p, dtype, scale):
    """temporal_softmax_loss: the masked sum of cross-entropies divided by N, and its gradient"""
    x = ctx.randn(N, T, V, dtype=dtype, scale=scale)
    y = ctx.randint(0, V, (N, T))
    mask = ctx.rand(N, T) < p
    mask[0, 0], mask[-1, -1] = True, False  # at least one step counted, one masked
    if int(mask.sum()) == N:  # dividing by the steps counted would be dividing by N: no check could tell
        mask[0, 1] = not mask[0, 1]
    reply = ctx.invoke("temporal_softmax_loss", x, y, mask, return_args=True)
    ctx.expect_unchanged([x, y, mask], reply, ["x", "y", "mask"])
    loss, dx = ctx.expect_items(reply.value, 2, "the result of temporal_softmax_loss (loss, dx)")
    X, m = cpu64(x), mask.cpu().to(f64)
    Y = y.cpu()
    counted = int(m.sum().item())
    what = f"x {fmt_shape(x.shape)}, {counted} of the {N * T} steps counted"
    ctx.expect_loss(
        loss,
        E.temporal_softmax_loss(X, Y, m).to(dtype),
        f"loss ({what})",
        bound=bound(dtype, FWD),
        mistakes={
            "the loss is divided by the number of steps counted; divide by N, the number of sequences": (
                E.temporal_softmax_loss(X, Y, m, divide_by=counted)
            ),
            "the loss is divided by N * T; divide by N, the number of sequences": (
                E.temporal_softmax_loss(X, Y, m, divide_by=N * T)
            ),
            "the mask is ignored in the loss: masked steps must add nothing": E.temporal_softmax_loss(
                X, Y, torch.ones_like(m)
            ),
            "the loss is not divided by N": E.temporal_softmax_loss(X, Y, m, divide_by=1),
        },
    )
    (want,) = vjp(lambda t: E.temporal_softmax_loss(t, Y, m), [X])
    (unmasked,) = vjp(lambda t: E.temporal_softmax_loss(t, Y, torch.ones_like(m)), [X])
    ctx.expect_tensor(
        dx,
        want.to(dtype),
        f"dx ({what})",
        bound=bound(dtype, BWD),
        mistakes={
            "dx is not masked: masked steps must get a zero gradient": unmasked,
            "dx is divided by the number of steps counted; divide by N as the loss is": want * N / counted,
        },
        hint="dx is (N, T, V): (softmax(x) - one-hot of y) * mask / N.",
    )


temporal_softmax_loss_float32 = variant(
    temporal_softmax_loss, "float32_large_scores", hidden=False, dtype=torch.float32, scale=30.0
)
