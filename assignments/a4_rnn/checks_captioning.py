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


def build(ctx, D, W, H, cell_type, dtype, vocab=VOCAB):
    model = ctx.call("CaptioningRNN", vocab, input_dim=D, wordvec_dim=W, hidden_dim=H, cell_type=cell_type, dtype=dtype)
    if not isinstance(model, Handle) or model.type != "CaptioningRNN":
        ctx.fail(f"CaptioningRNN(...) should build a CaptioningRNN object; found {describe_value(model)}.")
    G = 4 * H if cell_type == "lstm" else H
    V = len(vocab)
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
    set_params(ctx, model, params)
    return model, params


def set_params(ctx, model: Handle, params: dict) -> None:
    """Replace the values in model.params (the dict itself) with the judge's."""
    held = ctx.invoke_method(model, "__getattribute__", "params", keep=True).value
    ctx.method(held, "update", params)


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


# ---- training on the digit captions ---------------------------------------------------------------------------
# The judge trains the student's model itself (its loss, the judge's Adam and minibatches) on captions of the offline
# digits, then asks the model to caption the test images and counts, here, the captions that name the right digit.

NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
DIGIT_WORDS = ["<NULL>", "<START>", "<END>", "a", "the", "digit", *NUMBERS]
DIGIT_VOCAB = {w: i for i, w in enumerate(DIGIT_WORDS)}


def digit_captions(ctx) -> dict:
    """The digits as 8x8 features (64 numbers, centred by the training mean) and their captions, in the judge;
    the test labels stay here."""

    def build() -> dict:
        from dlcv.data import load_digits_as_cifar

        x_train, y_train, x_test, y_test = load_digits_as_cifar()

        def features(x):
            return (x[:, 0].to(f64).reshape(-1, 8, 4, 8, 4).mean(dim=(2, 4)) / 255).reshape(-1, 64)

        def captions(y):
            rows = []
            for label in y.tolist():
                words = ["a", NUMBERS[label]] if label < 5 else ["the", "digit", NUMBERS[label]]
                words = ["<START>", *words, "<END>"] + ["<NULL>"] * (3 - len(words))
                rows.append([DIGIT_VOCAB[w] for w in words])
            return torch.tensor(rows, dtype=torch.int64)

        f_train, f_test = features(x_train), features(x_test)
        mean = f_train.mean(dim=0)
        return {"X": f_train - mean, "captions": captions(y_train), "X_test": f_test - mean, "y_test": y_test}

    return ctx.cache("a4.digit_captions", build)


@check(
    "a4.captioning.train_digits_rnn",
    function="CaptioningRNN",
    cell_type="rnn",
    iters=300,
    batch=100,
    lr=1e-2,
)
def captioning_trains(ctx, cell_type, iters, batch, lr):
    """CaptioningRNN learns to caption the digits (trained by the grader with your loss)"""
    d = digit_captions(ctx)
    dtype = torch.float32
    model, params = build(ctx, 64, 16, 32, cell_type, dtype, vocab=DIGIT_VOCAB)
    params = {k: v * 0.5 for k, v in params.items()}  # a small start, as the kit's initialisation
    m = {k: torch.zeros_like(v) for k, v in params.items()}
    v = {k: torch.zeros_like(p) for k, p in params.items()}
    X, C = d["X"].to(ctx.device, dtype), d["captions"].to(ctx.device)
    losses = []
    for t in range(1, iters + 1):
        set_params(ctx, model, params)
        idx = ctx.randint(0, X.shape[0], (batch,))
        loss, grads = ctx.expect_items(ctx.method(model, "loss", X[idx], C[idx]), 2, "CaptioningRNN.loss's result")
        losses.append(ctx.expect_float(loss, f"the loss at iteration {t}"))
        ctx.expect_type(grads, dict, "CaptioningRNN.loss's grads")
        for k in params:
            ctx.expect_layout(grads.get(k), tuple(params[k].shape), dtype, f"grads[{k!r}]")
            m[k] = 0.9 * m[k] + 0.1 * grads[k]
            v[k] = 0.999 * v[k] + 0.001 * grads[k] ** 2
            params[k] = params[k] - lr * (m[k] / (1 - 0.9**t)) / ((v[k] / (1 - 0.999**t)).sqrt() + 1e-8)
    set_params(ctx, model, params)
    sampled = ctx.method(model, "sample", d["X_test"].to(ctx.device, dtype), max_length=4)
    ctx.expect_layout(sampled, (d["X_test"].shape[0], 4), torch.int64, "the sampled captions")
    right = 0
    for row, label in zip(sampled.cpu().tolist(), d["y_test"].tolist()):
        words = [DIGIT_WORDS[i] if 0 <= i < len(DIGIT_WORDS) else "?" for i in row]
        words = words[: words.index("<END>")] if "<END>" in words else words
        right += words[-1:] == [NUMBERS[label]]
    accuracy = 100 * right / len(d["y_test"])
    target = ctx.target("digit_caption_accuracy")
    ctx.note(
        f"trained {iters} iterations ({cell_type}): loss {losses[0]:.3f} -> {losses[-1]:.3f}; "
        f"{accuracy:.1f}% of the test captions name the right digit"
    )
    if accuracy < target:
        ctx.fail(
            f"after {iters} iterations of Adam with your loss ({cell_type}), {accuracy:.1f}% of the captions of the "
            f"test digits name the right digit; the target is {target:g}%. The loss went from {losses[0]:.3f} to "
            f"{losses[-1]:.3f}."
        )
