"""Public checks for A3's convolutional part: the naive layers (Conv, MaxPool), batch normalisation, Kaiming
initialisation, the networks and the training choices. Expected values come from expected.py (PyTorch's own ops,
differentiated by autograd, in float64, in the judge). Hidden variants live in hidden.py.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
import torch.nn.functional as F

from grader.checks import check, variant
from grader.judging import cpu64, describe_value, dtype_name, fmt_shape, same

from . import expected as E
from .layers import CONV_MODULE, FWD, Layer, bound, describe, expect_naive, judge_backward, judge_forward
from .nets import build, expect_initial, expect_params, expect_std, judge_net_loss, random_params, set_params
from .training import judge_overfit, judge_solver

f64 = torch.float64

# ---- Conv -----------------------------------------------------------------------------------------


def conv_shifted(x, w, b, conv_param, d):
    """The convolution with every window d pixels off (down and right): padding off by one, or missing."""
    stride, pad = conv_param["stride"], conv_param["pad"]
    HH, WW = w.shape[2:]
    shape = E.conv(x, w, b, conv_param).shape
    padded = F.pad(x, (pad - d, pad + d + WW, pad - d, pad + d + HH))
    return F.conv2d(padded, w, b, stride=stride)[:, :, : shape[2], : shape[3]]


PAD_HINT = (
    "pad exactly `pad` zeros on every side and take window (i, j) at row i * stride, column j * stride of the "
    "padded input"
)
CONV = Layer(
    "Conv",
    ("x", "w", "b"),
    reference=E.conv,
    forward_mistakes={
        "the filters are flipped (a true convolution); this layer slides the filter as it is (a cross-correlation, "
        "like F.conv2d)": lambda x, w, b, p: E.conv(x, w.flip(2, 3), b, p),
        "the bias b is not added": lambda x, w, b, p: E.conv(x, w, None, p),
        f"the padding is off by one: the windows are one pixel off (up and left); {PAD_HINT}": lambda x, w, b, p: (
            conv_shifted(x, w, b, p, 1)
        ),
        f"the padding is off by one: the windows are one pixel off (down and right); {PAD_HINT}": lambda x, w, b, p: (
            conv_shifted(x, w, b, p, -1)
        ),
    },
    backward_mistakes={"dw": {"dw is flipped": lambda v: v.dw.flip(2, 3)}},
    grad_hints={
        "dx": "dx has the shape of x, {shape}: drop the padding's rows and columns from the gradient of the "
        "padded input.",
        "dw": "dw has the shape of w, {shape}.",
        "db": "db has the shape of b, {shape}: sum dout over N, H' and W'.",
    },
)


def conv_problem(ctx, N, C, H, W, F_, HH, WW, dtype):
    return [
        ctx.randn(N, C, H, W, dtype=dtype),
        ctx.randn(F_, C, HH, WW, dtype=dtype, scale=0.5),
        ctx.randn(F_, dtype=dtype),
    ]


@check(
    "a3.convolutional.conv_forward", function="Conv", N=2, C=3, H=8, W=8, F_=4, HH=3, WW=3, stride=2, pad=1, dtype=f64
)
def conv_forward(ctx, N, C, H, W, F_, HH, WW, stride, pad, dtype):
    """Conv.forward matches F.conv2d (stride and zero padding)"""
    expect_naive(ctx, "Conv")
    x, w, b = conv_problem(ctx, N, C, H, W, F_, HH, WW, dtype)
    param = {"stride": stride, "pad": pad}
    shape = E.conv(cpu64(x), cpu64(w), cpu64(b), param).shape
    missing = (
        {
            "the input is not padded at the top and left: pad `pad` zeros on every side": conv_shifted(
                cpu64(x), cpu64(w), cpu64(b), param, pad
            )
        }
        if pad > 1
        else {}
    )
    judge_forward(
        ctx,
        CONV,
        [x, w, b],
        param,
        what=describe({"x": x, "w": w}, f"stride {stride}", f"pad {pad}"),
        mistakes=missing,
        hint=f"out is (N, F, H', W') = {fmt_shape(shape)} with H' = 1 + (H + 2 * pad - HH) // stride "
        f"and W' = 1 + (W + 2 * pad - WW) // stride.",
    )


@check(
    "a3.convolutional.conv_backward", function="Conv", N=2, C=3, H=8, W=8, F_=4, HH=3, WW=3, stride=2, pad=1, dtype=f64
)
def conv_backward(ctx, N, C, H, W, F_, HH, WW, stride, pad, dtype):
    """Conv.backward: dx, dw, db match autograd (stride 2, pad 1)"""
    expect_naive(ctx, "Conv")
    x, w, b = conv_problem(ctx, N, C, H, W, F_, HH, WW, dtype)
    judge_backward(
        ctx,
        CONV,
        [x, w, b],
        {"stride": stride, "pad": pad},
        n=N,
        what=describe({"x": x, "w": w}, f"stride {stride}", f"pad {pad}"),
    )


# ---- MaxPool --------------------------------------------------------------------------------------


def avg_pool(x, p):
    return F.avg_pool2d(x, (p["pool_height"], p["pool_width"]), stride=p["stride"])


def spread(v, times_size: bool):
    """The gradient spread evenly over each window (average pooling's), optionally not divided by its size."""
    (p,) = v.params
    (g,) = E.vjp(lambda a: avg_pool(a, p), [v.x], v.dout)
    return g * (p["pool_height"] * p["pool_width"] if times_size else 1)


MAXPOOL = Layer(
    "MaxPool",
    ("x",),
    reference=E.max_pool,
    forward_mistakes={
        "out is the average of each window; max pooling takes its maximum": avg_pool,
        "out is the minimum of each window; take the maximum": lambda x, p: -E.max_pool(-x, p),
    },
    backward_mistakes={
        "dx": {
            "the gradient is spread over the whole window; it goes to the window's maximum only": lambda v: spread(
                v, False
            ),
            "the gradient is spread over the whole window without dividing by its size": lambda v: spread(v, True),
        }
    },
)


def pool_param(HP, WP, stride):
    return {"pool_height": HP, "pool_width": WP, "stride": stride}


@check("a3.convolutional.maxpool_forward", function="MaxPool", N=2, C=3, H=8, W=6, HP=2, WP=2, stride=2, dtype=f64)
def maxpool_forward(ctx, N, C, H, W, HP, WP, stride, dtype):
    """MaxPool.forward matches F.max_pool2d (2x2, stride 2)"""
    expect_naive(ctx, "MaxPool")
    x = ctx.randn(N, C, H, W, dtype=dtype)
    shape = (N, C, 1 + (H - HP) // stride, 1 + (W - WP) // stride)
    judge_forward(
        ctx,
        MAXPOOL,
        [x],
        pool_param(HP, WP, stride),
        what=describe({"x": x}, f"{HP}x{WP} windows", f"stride {stride}"),
        hint=f"out is (N, C, H', W') = {fmt_shape(shape)} with H' = 1 + (H - pool_height) // stride "
        "and W' = 1 + (W - pool_width) // stride.",
    )


@check("a3.convolutional.maxpool_backward", function="MaxPool", N=2, C=3, H=8, W=6, HP=2, WP=2, stride=2, dtype=f64)
def maxpool_backward(ctx, N, C, H, W, HP, WP, stride, dtype):
    """MaxPool.backward matches autograd (2x2, stride 2)"""
    expect_naive(ctx, "MaxPool")
    x = ctx.randn(N, C, H, W, dtype=dtype)
    layer = MAXPOOL
    if stride < max(HP, WP):
        layer = replace(
            MAXPOOL,
            grad_hints={
                "dx": (
                    "Each output's gradient goes to the position of its window's maximum and ADDS to what is there "
                    "(windows overlap at this stride: one entry can be the maximum of several windows)."
                )
            },
        )
    judge_backward(
        ctx, layer, [x], pool_param(HP, WP, stride), what=describe({"x": x}, f"{HP}x{WP} windows", f"stride {stride}")
    )


# ---- ThreeLayerConvNet ----------------------------------------------------------------------------


def three_layer_shapes(dims, F_, fs, hidden, C):
    c, h, w = dims
    pad = (fs - 1) // 2
    hp, wp = (h + 2 * pad - fs + 1) // 2, (w + 2 * pad - fs + 1) // 2
    return {
        "W1": (F_, c, fs, fs),
        "b1": (F_,),
        "W2": (F_ * hp * wp, hidden),
        "b2": (hidden,),
        "W3": (hidden, C),
        "b3": (C,),
    }


@check(
    "a3.convolutional.three_layer_init",
    function="ThreeLayerConvNet",
    dims=(3, 16, 16),
    num_filters=8,
    filter_size=5,
    hidden=50,
    C=7,
    weight_scale=0.05,
    dtype=f64,
)
def three_layer_init(ctx, dims, num_filters, filter_size, hidden, C, weight_scale, dtype):
    """ThreeLayerConvNet: params W1..W3, b1..b3 (shapes, dtype, device), N(0, weight_scale^2) weights"""
    kwargs = {} if dtype is None else {"dtype": dtype}
    model = build(
        ctx,
        "ThreeLayerConvNet",
        input_dims=tuple(dims),
        num_filters=num_filters,
        filter_size=filter_size,
        hidden_dim=hidden,
        num_classes=C,
        weight_scale=weight_scale,
        device=str(ctx.device),
        **kwargs,
    )
    dtype = dtype or torch.float32
    shapes = three_layer_shapes(dims, num_filters, filter_size, hidden, C)
    params = ctx.getattr(model, "params")
    what = (
        f"ThreeLayerConvNet(input_dims={tuple(dims)}, num_filters={num_filters}, filter_size={filter_size}, "
        f"hidden_dim={hidden}, num_classes={C}, {dtype_name(dtype)})"
    )
    expect_params(
        ctx,
        params,
        shapes,
        dtype,
        what,
        hint="W2 maps the pooled conv output, num_filters * H/2 * W/2 values (the conv keeps H and W, the "
        "2x2 pool halves them), to hidden_dim.",
    )
    expect_initial(ctx, params, shapes, weight_scale, what)


@check(
    "a3.convolutional.three_layer_loss",
    function="ThreeLayerConvNet",
    N=4,
    dims=(3, 8, 8),
    num_filters=4,
    filter_size=3,
    hidden=6,
    C=5,
    reg=0.07,
    dtype=f64,
)
def three_layer_loss(ctx, N, dims, num_filters, filter_size, hidden, C, reg, dtype):
    """ThreeLayerConvNet.loss: scores, loss and every gradient match autograd"""
    model = build(
        ctx,
        "ThreeLayerConvNet",
        input_dims=tuple(dims),
        num_filters=num_filters,
        filter_size=filter_size,
        hidden_dim=hidden,
        num_classes=C,
        weight_scale=0.1,
        reg=reg,
        dtype=dtype,
        device=str(ctx.device),
    )
    shapes = three_layer_shapes(dims, num_filters, filter_size, hidden, C)
    expect_params(ctx, ctx.getattr(model, "params"), shapes, dtype, "ThreeLayerConvNet")
    params = random_params(ctx, shapes, dtype, 0.3, 0.3)
    set_params(ctx, model, params)
    X, y = ctx.randn(N, *dims, dtype=dtype), ctx.randint(0, C, (N,))
    judge_net_loss(
        ctx,
        model,
        "ThreeLayerConvNet",
        params,
        X,
        y,
        reg,
        E.three_layer_scores,
        f"(input {fmt_shape(X.shape)}, {num_filters} {filter_size}x{filter_size} filters, "
        f"reg={reg:g}, {dtype_name(dtype)})",
    )


# ---- DeepConvNet ----------------------------------------------------------------------------------


def deep_shapes(dims, num_filters, max_pools, C, batchnorm):
    c, h, w = dims
    out = {}
    for i, f in enumerate(num_filters, start=1):
        out[f"W{i}"], out[f"b{i}"] = (f, c, 3, 3), (f,)
        if batchnorm:
            out[f"gamma{i}"], out[f"beta{i}"] = (f,), (f,)
        c = f
        if i - 1 in max_pools:
            h, w = h // 2, w // 2
    L = len(num_filters) + 1
    out[f"W{L}"], out[f"b{L}"] = (c * h * w, C), (C,)
    return out


NOT_KAIMING = "the weights are not Kaiming-initialised (weight_scale='kaiming' means weight_initializer(...))"
WRONG_GAIN = "the gain is wrong: 2 for the convolutions (a ReLU follows them), 1 for the last linear layer"


def kaiming_std(shape: tuple, relu: bool) -> float:
    fan_in = shape[0] if len(shape) == 2 else shape[1] * shape[2] * shape[3]
    return math.sqrt((2.0 if relu else 1.0) / fan_in)


@check(
    "a3.convolutional.deep_init",
    function="DeepConvNet",
    dims=(3, 16, 16),
    num_filters=(16, 32, 8),
    max_pools=(0, 2),
    C=6,
    weight_scale=0.05,
    dtype=f64,
)
def deep_init(ctx, dims, num_filters, max_pools, C, weight_scale, dtype):
    """DeepConvNet: params (with and without batchnorm): shapes, dtype, device, initial values"""
    for batchnorm in (False, True):
        kwargs = {} if dtype is None else {"dtype": dtype}
        model = build(
            ctx,
            "DeepConvNet",
            input_dims=tuple(dims),
            num_filters=list(num_filters),
            max_pools=list(max_pools),
            batchnorm=batchnorm,
            num_classes=C,
            weight_scale=weight_scale,
            device=str(ctx.device),
            **kwargs,
        )
        dt = dtype or torch.float32
        what = (
            f"DeepConvNet(input_dims={tuple(dims)}, num_filters={list(num_filters)}, max_pools={list(max_pools)}, "
            f"batchnorm={batchnorm}, {dtype_name(dt)})"
        )
        shapes = deep_shapes(dims, num_filters, max_pools, C, batchnorm)
        params = ctx.getattr(model, "params")
        expect_params(
            ctx,
            params,
            shapes,
            dt,
            what,
            hint="Each 3x3 convolution (padding 1) keeps H and W, each listed pooling halves them; the last "
            "layer is linear, from the flattened output of the last convolution.",
        )
        expect_initial(ctx, params, shapes, weight_scale, what)


@check(
    "a3.convolutional.deep_init_kaiming",
    function="DeepConvNet",
    dims=(3, 16, 16),
    num_filters=(32, 64),
    max_pools=(0, 1),
    C=10,
    dtype=f64,
)
def deep_init_kaiming(ctx, dims, num_filters, max_pools, C, dtype):
    """DeepConvNet(weight_scale='kaiming'): Kaiming weights (gain 2 for the convolutions, 1 for the last layer)"""
    what = f"DeepConvNet(num_filters={list(num_filters)}, weight_scale='kaiming')"
    shapes = deep_shapes(dims, num_filters, max_pools, C, False)
    L = len(num_filters) + 1
    model = build(
        ctx,
        "DeepConvNet",
        input_dims=tuple(dims),
        num_filters=list(num_filters),
        max_pools=list(max_pools),
        num_classes=C,
        weight_scale="kaiming",
        dtype=dtype,
        device=str(ctx.device),
    )
    params = ctx.getattr(model, "params")
    expect_params(ctx, params, shapes, dtype, what)
    for k, s in shapes.items():
        if k.startswith("W"):
            relu = k != f"W{L}"
            expect_std(
                ctx,
                params[k],
                kaiming_std(s, relu),
                f"{what}.params['{k}']",
                {NOT_KAIMING: 1e-3, WRONG_GAIN: kaiming_std(s, not relu)},
            )


def deep_stats(ctx, model, n: int) -> list[tuple]:
    """[(running_mean, running_var)] of each batch normalisation, read from model.bn_params."""
    bn_params = ctx.getattr(model, "bn_params")
    ctx.expect(
        isinstance(bn_params, list) and len(bn_params) == n,
        f"DeepConvNet.bn_params: expected a list of {n} dicts, found {describe_value(bn_params)}.",
    )
    out = []
    for i, bp in enumerate(bn_params):
        ctx.expect(
            isinstance(bp, dict) and all(isinstance(bp.get(k), torch.Tensor) for k in ("running_mean", "running_var")),
            f"after a training step, bn_params[{i}] holds no running_mean and running_var: pass "
            "self.bn_params[i] to the batch normalisation of layer i (it stores its statistics there).",
        )
        out.append((cpu64(bp["running_mean"]), cpu64(bp["running_var"])))
    return out


@check(
    "a3.convolutional.deep_loss",
    function="DeepConvNet",
    N=4,
    dims=(3, 8, 8),
    num_filters=(3, 4, 2),
    max_pools=(0, 2),
    C=5,
    reg=0.1,
    dtype=f64,
    batchnorm=False,
)
def deep_loss(ctx, N, dims, num_filters, max_pools, C, reg, dtype, batchnorm):
    """DeepConvNet.loss: scores, loss and every gradient match autograd"""
    model = build(
        ctx,
        "DeepConvNet",
        input_dims=tuple(dims),
        num_filters=list(num_filters),
        max_pools=list(max_pools),
        batchnorm=batchnorm,
        num_classes=C,
        weight_scale=0.1,
        reg=reg,
        dtype=dtype,
        device=str(ctx.device),
    )
    shapes = deep_shapes(dims, num_filters, max_pools, C, batchnorm)
    expect_params(ctx, ctx.getattr(model, "params"), shapes, dtype, "DeepConvNet")
    params = random_params(ctx, shapes, dtype, 0.3, 0.2)
    set_params(ctx, model, params)
    X, y = ctx.randn(N, *dims, dtype=dtype), ctx.randint(0, C, (N,))
    what = (
        f"(input {fmt_shape(X.shape)}, num_filters={list(num_filters)}, max_pools={list(max_pools)}, "
        f"batchnorm={batchnorm}, reg={reg:g}, {dtype_name(dtype)})"
    )
    pools = list(max_pools)

    def train_scores(p, X_):
        return E.deep_scores(p, X_, pools)

    if not batchnorm:
        judge_net_loss(ctx, model, "DeepConvNet", params, X, y, reg, train_scores, what)
        return

    def test_scores(q, Xc):
        return E.deep_scores(q, Xc, pools, deep_stats(ctx, model, len(num_filters)))

    def test_mistakes(q, Xc):
        return {
            "the batch normalisations use the batch's statistics in test mode: loss(X) sets every "
            "bn_param['mode'] to 'test'": E.deep_scores(q, Xc, pools)
        }

    judge_net_loss(
        ctx,
        model,
        "DeepConvNet",
        params,
        X,
        y,
        reg,
        train_scores,
        what,
        test_scores=test_scores,
        test_mistakes=test_mistakes,
    )


# ---- kaiming_initializer --------------------------------------------------------------------------


@check(
    "a3.convolutional.kaiming_linear", function="kaiming_initializer", Din=400, Dout=300, K=None, relu=True, dtype=f64
)
def kaiming_linear(ctx, Din, Dout, K, relu, dtype):
    """kaiming_initializer for a linear layer: (Din, Dout), std sqrt(2 / Din)"""
    kwargs = {"device": str(ctx.device)}
    if relu is not None:
        kwargs["relu"] = relu
    if dtype is not None:
        kwargs["dtype"] = dtype
    got = ctx.call("kaiming_initializer", Din, Dout, K=K, **kwargs)
    relu = True if relu is None else relu
    dtype = dtype or torch.float32
    shape = (Din, Dout) if K is None else (Dout, Din, K, K)
    what = f"kaiming_initializer({Din}, {Dout}, K={K}, relu={relu}, {dtype_name(dtype)})"
    ctx.expect_layout(
        got, shape, dtype, what, hint="(Din, Dout) for a linear layer, (Dout, Din, K, K) for a convolutional one."
    )
    gain = 2.0 if relu else 1.0
    fan_in = Din if K is None else Din * K * K
    alts = {
        "the fan-in is Dout; it is the number of inputs of one output unit, Din (times K * K for a "
        "convolution)": math.sqrt(gain / (Dout if K is None else Dout * K * K)),
        f"the gain is {3 - gain:g}; it is 2 with relu=True, 1 with relu=False": math.sqrt((3 - gain) / fan_in),
        "the standard deviation is gain / fan_in; it is sqrt(gain / fan_in)": gain / fan_in,
    }
    if K is not None:
        alts["the fan-in leaves out K * K: it is Din * K * K for a convolution"] = math.sqrt(gain / Din)
    expect_std(ctx, got, math.sqrt(gain / fan_in), what, alts)


# ---- BatchNorm ------------------------------------------------------------------------------------


def bn_inputs(ctx, N, D, dtype):
    x = ctx.randn(N, D, dtype=dtype, scale=4.0) + ctx.randn(D, dtype=dtype, scale=3.0)
    return [x, 1 + ctx.randn(D, dtype=dtype, scale=0.3), ctx.randn(D, dtype=dtype)]


def bn_out(x, gamma, beta, param):
    """The train-mode output, for the Layer contract (x may be (N, D) or (N, C, H, W))."""
    return E.batch_norm_train(x, gamma, beta, param.get("eps", 1e-5))


def bn_variant(x, gamma, beta, param, *, unbiased=False, eps_outside=False, swapped=False):
    eps = param.get("eps", 1e-5)
    m, var = x.mean(0), x.var(0, unbiased=unbiased)
    std = var.sqrt() + eps if eps_outside else torch.sqrt(var + eps)
    scale, shift = (beta, gamma) if swapped else (gamma, beta)
    return (x - m) / std * scale + shift


BN_FORWARD_MISTAKES = {
    "the batch variance is the unbiased one (divided by N - 1); batch normalisation uses the biased one (divided by "
    "N)": lambda x, g, b, p: bn_variant(x, g, b, p, unbiased=True),
    "eps is added to the standard deviation; add it to the variance, under the square root": lambda x, g, b, p: (
        bn_variant(x, g, b, p, eps_outside=True)
    ),
    "gamma and beta are swapped: out = gamma * x_hat + beta": lambda x, g, b, p: bn_variant(x, g, b, p, swapped=True),
}

BATCHNORM = Layer(
    "BatchNorm",
    ("x", "gamma", "beta"),
    reference=bn_out,
    forward_mistakes=BN_FORWARD_MISTAKES,
    backward_mistakes={
        "dx": {
            "dx treats the batch mean and variance as constants; they depend on every example of the batch": lambda v: (
                v.dout * v.gamma / torch.sqrt(v.x.var(0, unbiased=False) + 1e-5)
            )
        },
        "dgamma": {"dgamma sums dout * x; it sums dout * x_hat (the normalised x)": lambda v: (v.dout * v.x).sum(0)},
    },
)


@check("a3.convolutional.bn_forward_train", function="BatchNorm", N=20, D=6, dtype=f64, eps=None)
def bn_forward_train(ctx, N, D, dtype, eps):
    """BatchNorm.forward in train mode matches F.batch_norm (batch statistics, biased variance)"""
    x, gamma, beta = bn_inputs(ctx, N, D, dtype)
    param = {"mode": "train"} if eps is None else {"mode": "train", "eps": eps}
    judge_forward(
        ctx,
        BATCHNORM,
        [x, gamma, beta],
        param,
        what=describe({"x": x}, "train mode", f"eps={param.get('eps', 1e-5):g}"),
        hint="Normalise each feature (column) with the mean and variance over the batch (dim 0).",
    )


def running_expectations(xs: list, momentum: float, start: tuple | None, rows=lambda t: t):
    """[(running_mean, running_var)] after each step, and the mistakes' versions."""
    D = rows(xs[0]).shape[1]
    rm0, rv0 = start if start is not None else (torch.zeros(D, dtype=torch.float64),) * 2

    def seq(unbiased=False, reverse=False, carry=True):
        rm, rv, out = rm0, rv0, []
        for x in xs:
            r = rows(x)
            mean, var = r.mean(0), r.var(0, unbiased=unbiased)
            keep = (1 - momentum) if reverse else momentum
            base_m, base_v = (rm, rv) if carry else (rm0, rv0)
            rm, rv = keep * base_m + (1 - keep) * mean, keep * base_v + (1 - keep) * var
            out.append((rm, rv))
        return out

    mistakes = {
        "the running variance averages the unbiased batch variance (divided by N - 1); keep the biased one, "
        "the variance used to normalise": seq(unbiased=True),
        "the momentum is reversed: running = momentum * running + (1 - momentum) * batch": seq(reverse=True),
        "the running statistics do not carry over: each call must start from bn_param's running_mean and "
        "running_var (and store the new ones there)": seq(carry=False),
    }
    return seq(), mistakes


def judge_running(ctx, layer: str, xs, gamma, beta, momentum, start, dtype, rows=lambda t: t) -> None:
    """Call layer.forward in train mode on each x, passing the same bn_param along; judge the running statistics."""
    D = gamma.shape[0]
    param: dict = {"mode": "train"}
    if momentum is not None:
        param["momentum"] = momentum
    if start is not None:
        param["running_mean"], param["running_var"] = start
    want, mistakes = running_expectations(
        [cpu64(x) for x in xs],
        0.9 if momentum is None else momentum,
        None if start is None else tuple(cpu64(t) for t in start),
        rows,
    )
    for k, x in enumerate(xs):
        reply = ctx.invoke(f"{layer}.forward", x, gamma, beta, param, return_args=True)
        ctx.expect_items(reply.value, 2, f"the result of {layer}.forward (out, cache)")
        after = reply.args[3]
        what = f"after {k + 1} training step{'s' if k else ''}" + (f", momentum {momentum:g}" if momentum else "")
        ctx.expect(
            isinstance(after, dict)
            and all(isinstance(after.get(n), torch.Tensor) for n in ("running_mean", "running_var")),
            f"bn_param {what}: expected the running statistics in bn_param['running_mean'] and "
            f"bn_param['running_var'] (tensors of shape ({D},)); found {describe_value(after)}.",
        )
        ctx.expect_dict(
            {n: after[n] for n in ("running_mean", "running_var")},
            {"running_mean": want[k][0].to(dtype), "running_var": want[k][1].to(dtype)},
            f"bn_param {what}",
            bound=bound(dtype, FWD),
            mistakes={
                n: {d: s[k][i] for d, s in mistakes.items()} for i, n in enumerate(("running_mean", "running_var"))
            },
        )
        param = after


@check(
    "a3.convolutional.bn_running_stats", function="BatchNorm", N=16, D=5, steps=3, momentum=None, start=False, dtype=f64
)
def bn_running_stats(ctx, N, D, steps, momentum, start, dtype):
    """BatchNorm: running averages over several steps (biased variance, running = m * running + (1 - m) * batch)"""
    xs = [bn_inputs(ctx, N, D, dtype)[0] for _ in range(steps)]
    _, gamma, beta = bn_inputs(ctx, N, D, dtype)
    init = (ctx.randn(D, dtype=dtype), ctx.rand(D, dtype=dtype) + 0.5) if start else None
    judge_running(ctx, "BatchNorm", xs, gamma, beta, momentum, init, dtype)


def judge_bn_test(ctx, layer: str, x, gamma, beta, rows_mistake: bool = False):
    C = gamma.shape[0]
    dtype = x.dtype
    rm, rv = ctx.randn(C, dtype=dtype), ctx.rand(C, dtype=dtype) + 0.5
    param = {"mode": "test", "running_mean": rm, "running_var": rv}
    reply = ctx.invoke(f"{layer}.forward", x, gamma, beta, param, return_args=True)
    ctx.expect_unchanged([x, gamma, beta], reply, ["x", "gamma", "beta"])
    out, _ = ctx.expect_items(reply.value, 2, f"the result of {layer}.forward (out, cache)")
    X, G, B = cpu64(x), cpu64(gamma), cpu64(beta)
    want = F.batch_norm(X, cpu64(rm), cpu64(rv), G, B, training=False, eps=1e-5)
    mistakes = {
        "test mode uses the batch's statistics; it normalises with bn_param's running_mean and running_var": bn_out(
            X, G, B, {}
        )
    }
    if rows_mistake:
        mistakes[
            "the rows are taken from x.reshape(-1, C), which mixes channels: move the channels last before "
            "flattening (permute), and back after"
        ] = F.batch_norm(X.reshape(-1, C), cpu64(rm), cpu64(rv), G, B, training=False, eps=1e-5).reshape(X.shape)
    ctx.expect_tensor(
        out, want.to(dtype), f"out (test mode, {describe({'x': x})})", bound=bound(dtype, FWD), mistakes=mistakes
    )
    after = reply.args[3]
    for name, t in (("running_mean", rm), ("running_var", rv)):
        ctx.expect(
            same(after.get(name), t),
            f"bn_param['{name}'] changed in test mode; the running statistics are updated in train mode only.",
        )


@check("a3.convolutional.bn_forward_test", function="BatchNorm", N=10, D=7, dtype=f64)
def bn_forward_test(ctx, N, D, dtype):
    """BatchNorm.forward in test mode normalises with the running statistics (F.batch_norm, eval)"""
    judge_bn_test(ctx, "BatchNorm", *bn_inputs(ctx, N, D, dtype))


@check("a3.convolutional.bn_backward", function="BatchNorm", N=12, D=5, dtype=f64, method="backward")
def bn_backward(ctx, N, D, dtype, method):
    """BatchNorm.backward: dx, dgamma, dbeta match autograd"""
    x, gamma, beta = bn_inputs(ctx, N, D, dtype)
    judge_backward(
        ctx, BATCHNORM, [x, gamma, beta], {"mode": "train"}, method=method, n=N, what=describe({"x": x}, "train mode")
    )


# ---- SpatialBatchNorm -----------------------------------------------------------------------------


def sbn_inputs(ctx, shape, dtype):
    C = shape[1]
    x = ctx.randn(*shape, dtype=dtype, scale=3.0) + ctx.randn(1, C, 1, 1, dtype=dtype, scale=2.0)
    return [x, 1 + ctx.randn(C, dtype=dtype, scale=0.3), ctx.randn(C, dtype=dtype)]


def sbn_wrong_layout(x, gamma, beta, param):
    """Statistics over the rows of x.reshape(-1, C) (no transpose): a known mistake."""
    return E.batch_norm_train(x.reshape(-1, x.shape[1]), gamma, beta, param.get("eps", 1e-5)).reshape(x.shape)


LAYOUT = (
    "the rows are taken from x.reshape(-1, C), which mixes channels: move the channels last before flattening "
    "(permute), and back after"
)
SPATIAL = Layer(
    "SpatialBatchNorm",
    ("x", "gamma", "beta"),
    reference=bn_out,
    forward_mistakes={LAYOUT: sbn_wrong_layout},
    backward_mistakes={
        "dx": {LAYOUT: lambda v: E.vjp(lambda a: sbn_wrong_layout(a, v.gamma, v.beta, {}), [v.x], v.dout)[0]}
    },
    grad_hints={"dx": "dx has the shape of x, {shape}."},
)


@check(
    "a3.convolutional.sbn_forward_train",
    function="SpatialBatchNorm",
    shape=(3, 4, 5, 6),
    steps=2,
    momentum=None,
    dtype=f64,
)
def sbn_forward_train(ctx, shape, steps, momentum, dtype):
    """SpatialBatchNorm.forward in train mode: statistics per channel over (N, H, W), running averages"""
    x, gamma, beta = sbn_inputs(ctx, shape, dtype)
    judge_forward(
        ctx,
        SPATIAL,
        [x, gamma, beta],
        {"mode": "train"},
        what=describe({"x": x}, "train mode"),
        hint="Normalise each channel with the mean and (biased) variance over N, H and W.",
    )
    xs = [x] + [sbn_inputs(ctx, shape, dtype)[0] for _ in range(steps - 1)]
    judge_running(ctx, "SpatialBatchNorm", xs, gamma, beta, momentum, None, dtype, rows=E.as_rows)


@check("a3.convolutional.sbn_forward_test", function="SpatialBatchNorm", shape=(2, 3, 4, 5), dtype=f64)
def sbn_forward_test(ctx, shape, dtype):
    """SpatialBatchNorm.forward in test mode uses the running statistics per channel"""
    judge_bn_test(ctx, "SpatialBatchNorm", *sbn_inputs(ctx, shape, dtype), rows_mistake=True)


@check("a3.convolutional.sbn_backward", function="SpatialBatchNorm", shape=(2, 3, 4, 5), dtype=f64)
def sbn_backward(ctx, shape, dtype):
    """SpatialBatchNorm.backward: dx, dgamma, dbeta match autograd"""
    x, gamma, beta = sbn_inputs(ctx, shape, dtype)
    judge_backward(ctx, SPATIAL, [x, gamma, beta], {"mode": "train"}, what=describe({"x": x}, "train mode"))


public = [
    variant(
        conv_forward,
        "s1",
        hidden=False,
        N=3,
        C=2,
        H=6,
        W=5,
        F_=3,
        HH=5,
        WW=3,
        stride=1,
        pad=2,
        title="Conv.forward matches F.conv2d (stride 1, a 5x3 filter, pad 2)",
    ),
    variant(
        conv_backward,
        "s1",
        hidden=False,
        N=3,
        C=2,
        H=6,
        W=5,
        F_=3,
        HH=5,
        WW=3,
        stride=1,
        pad=2,
        title="Conv.backward: dx, dw, db match autograd (stride 1, a 5x3 filter, pad 2)",
    ),
    variant(
        maxpool_forward,
        "overlap",
        hidden=False,
        N=2,
        C=2,
        H=7,
        W=9,
        HP=3,
        WP=2,
        stride=2,
        title="MaxPool.forward matches F.max_pool2d (3x2 windows, stride 2: overlapping)",
    ),
    variant(
        maxpool_backward,
        "overlap",
        hidden=False,
        N=2,
        C=2,
        H=7,
        W=9,
        HP=3,
        WP=3,
        stride=1,
        title="MaxPool.backward matches autograd (3x3 windows, stride 1: overlapping)",
    ),
    variant(
        deep_loss,
        "batchnorm",
        hidden=False,
        N=5,
        dims=(2, 6, 6),
        num_filters=(3, 4),
        max_pools=(1,),
        C=4,
        reg=0.05,
        batchnorm=True,
        title="DeepConvNet with batchnorm: train-mode loss and gradients (gamma, beta too), test-mode scores",
    ),
    variant(
        kaiming_linear,
        "conv",
        hidden=False,
        Din=32,
        Dout=64,
        K=3,
        relu=False,
        title="kaiming_initializer for a convolution without ReLU: (Dout, Din, K, K), std sqrt(1 / (Din K K))",
    ),
    variant(
        bn_backward,
        "alt",
        hidden=False,
        method="backward_alt",
        title="BatchNorm.backward_alt: dx, dgamma, dbeta match autograd (and so backward)",
    ),
]


# ---- find_overfit_parameters and the convolutional solver ---------------------------------------

OVERFIT_FILTERS, OVERFIT_POOLS = [8, 16, 32, 64], [0, 1, 2, 3]


@check("a3.convolutional.find_overfit_parameters", function="find_overfit_parameters", timeout=300.0)
def find_overfit_parameters(ctx):
    """find_overfit_parameters: DeepConvNet([8, 16, 32, 64]) with Adam overfits 50 images in 30 epochs"""
    judge_overfit(
        ctx,
        "find_overfit_parameters",
        "DeepConvNet",
        CONV_MODULE,
        {
            "input_dims": (3, 32, 32),
            "num_classes": 10,
            "num_filters": OVERFIT_FILTERS,
            "max_pools": OVERFIT_POOLS,
            "reg": 1e-5,
        },
        lambda p, X: E.deep_scores(p, X, OVERFIT_POOLS),
        {"num_epochs": 30, "batch_size": 10},
        "adam",
    )


@check(
    "a3.convolutional.create_convolutional_solver_instance",
    function="create_convolutional_solver_instance",
    timeout=600.0,
)
def create_convolutional_solver_instance(ctx):
    """create_convolutional_solver_instance: its DeepConvNet, trained by the grader's Solver (time-limited), reaches
    the target"""
    held: dict = {}

    def evaluate(model, q, X, trained):
        if "max_pools" not in held:
            max_pools = ctx.getattr(model, "max_pools")
            ctx.expect(
                isinstance(max_pools, list) and all(isinstance(i, int) for i in max_pools),
                f"solver.model.max_pools: expected a list of ints, found {describe_value(max_pools)}.",
            )
            held["max_pools"] = max_pools
        stats = None
        if trained and "gamma1" in q:
            if "stats" not in held:
                held["stats"] = deep_stats(ctx, model, E.count_layers(q) - 1)
            stats = held["stats"]
        return E.deep_scores(q, X.to(q["W1"].dtype), held["max_pools"], stats)

    def describe_net(q):
        return (
            f"DeepConvNet with {E.count_layers(q) - 1} conv layers ({'with' if 'gamma1' in q else 'without'} batchnorm)"
        )

    judge_solver(
        ctx,
        "create_convolutional_solver_instance",
        "DeepConvNet",
        CONV_MODULE,
        flatten=False,
        prefix="conv",
        target_key="conv_solver_accuracy",
        evaluate=evaluate,
        describe=describe_net,
        layout=lambda params: None,
        advice="batchnorm, Kaiming initialisation, Adam and a good learning rate help; the training is "
        "time-limited, so a model that learns fast wins.",
    )
