"""Public checks for A4's captioning model (captioning.py): its loss and gradients against expected.py's model
differentiated by autograd in float64, and its greedy sampling. The model is built in the sandbox; the judge sets
known random parameters."""

from __future__ import annotations

import torch

from grader.checks import check, variant
from grader.judging import cpu64, describe_value, fmt_shape
from grader.wire import Handle

from . import expected as E
from .layers import BWD, bound

f64 = torch.float64
WORDS = ["<NULL>", "<START>", "<END>", "a", "cat", "dog", "sits", "runs", "on", "the", "mat"]
VOCAB = {w: i for i, w in enumerate(WORDS)}
NULL, START, END = 0, 1, 2


def build(ctx, D, W, H, cell_type, dtype):
    model = ctx.call("CaptioningRNN", VOCAB, input_dim=D, wordvec_dim=W, hidden_dim=H, cell_type=cell_type, dtype=dtype)
    if not isinstance(model, Handle) or model.type != "CaptioningRNN":
        ctx.fail(f"CaptioningRNN(...) should build a CaptioningRNN object; found {describe_value(model)}.")
    G = 4 * H if cell_type == "lstm" else H
    V = len(VOCAB)
    shapes = {
        "W_proj": (D, H),
        "b_proj": (H,),
        "W_embed": (V, W),
        "Wx": (W, G),
        "Wh": (H, G),
        "b": (G,),
        "W_vocab": (H, V),
        "b_vocab": (V,),
    }
    params = {k: ctx.randn(*s, dtype=dtype, scale=0.4) for k, s in shapes.items()}
    held = ctx.invoke_method(model, "__getattribute__", "params", keep=True).value
    ctx.method(held, "update", params)
    return model, params


def captions(ctx, N, T):
    """Random captions: <START>, words, <END>, then <NULL> padding, of random lengths."""
    out = torch.full((N, T), NULL, dtype=torch.int64)
    for n in range(N):
        length = int(ctx.randint(1, T - 1, (1,)).item()) if n else T - 2  # the first one fills every step
        out[n, 0] = START
        out[n, 1 : 1 + length] = ctx.randint(3, len(VOCAB), (length,)).cpu()
        out[n, 1 + length] = END
    return out.to(ctx.device)


@check("a4.captioning.loss_rnn", function="CaptioningRNN", N=3, T=6, D=5, W=4, H=6, cell_type="rnn", dtype=f64)
def captioning_loss(ctx, N, T, D, W, H, cell_type, dtype):
    """CaptioningRNN.loss: the loss and every gradient match autograd"""
    model, params = build(ctx, D, W, H, cell_type, dtype)
    features = ctx.randn(N, D, dtype=dtype)
    caps = captions(ctx, N, T)
    reply = ctx.invoke_method(model, "loss", features, caps, return_args=True)
    ctx.expect_unchanged([features, caps], reply, ["features", "captions"])
    loss, grads = ctx.expect_items(reply.value, 2, "the result of CaptioningRNN.loss (loss, grads)")
    p64, f64_ = cpu64(params), cpu64(features)
    keys = list(p64)
    leaves = {k: p64[k].clone().requires_grad_(True) for k in keys}
    with torch.enable_grad():
        want = E.captioning_loss(leaves, f64_, caps.cpu(), NULL, cell_type)
        wgrads = dict(zip(keys, torch.autograd.grad(want, [leaves[k] for k in keys])))
    what = f"{cell_type}, features {fmt_shape(features.shape)}, captions {fmt_shape(caps.shape)}"
    unmasked = E.captioning_loss(p64, f64_, caps.cpu(), -1, cell_type)
    ctx.expect_loss(
        loss,
        want.detach().to(dtype),
        f"loss ({what})",
        bound=bound(dtype, BWD),
        mistakes={"the <NULL> padding is counted: mask = captions_out != <NULL>": unmasked},
    )
    ctx.expect_dict(grads, {k: g.to(dtype) for k, g in wgrads.items()}, f"grads ({what})", bound=bound(dtype, 1e-6))


captioning_loss_lstm = variant(captioning_loss, "lstm", hidden=False, cell_type="lstm")


@check("a4.captioning.sample_rnn", function="CaptioningRNN", N=4, D=5, W=4, H=6, L=6, cell_type="rnn", dtype=f64)
def captioning_sample(ctx, N, D, W, H, L, cell_type, dtype):
    """CaptioningRNN.sample: greedy captions, each chosen word fed back"""
    model, params = build(ctx, D, W, H, cell_type, dtype)
    features = ctx.randn(N, D, dtype=dtype)
    reply = ctx.invoke_method(model, "sample", features, max_length=L, return_args=True)
    ctx.expect_unchanged([features], reply, ["features"])
    want = E.captioning_sample(cpu64(params), cpu64(features), START, L, cell_type)
    ctx.expect_tensor(
        reply.value,
        want,
        f"the captions ({cell_type}, features {fmt_shape(features.shape)}, max_length={L})",
        hint=f"captions is (N, max_length) = {fmt_shape((N, L))}, int64, <START> not included.",
    )


captioning_sample_lstm = variant(captioning_sample, "lstm", hidden=False, cell_type="lstm")
