"""Public checks for A3's fully connected part: the layers (Linear, ReLU, Dropout), the networks, the update rules
and the training choices. Expected values come from expected.py (PyTorch's own ops, differentiated by autograd, in
float64, in the judge: only the student's code must do without autograd). Hidden variants live in hidden.py.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from grader.checks import check, variant
from grader.judging import cpu64, describe_value, dtype_name, fmt_shape, rel_error, same

from . import expected as E
from .layers import BWD, FC_MODULE, FWD, Layer, bound, describe, expect_grads, judge_backward, judge_forward, side_randn
from .nets import build, expect_initial, expect_params, judge_net_loss, random_params, set_params
from .training import judge_overfit, judge_solver

f64 = torch.float64

# ---- Linear and ReLU ------------------------------------------------------------------------------

LINEAR = Layer(
    "Linear",
    ("x", "w", "b"),
    reference=E.linear,
    forward_mistakes={"the bias b is not added": lambda x, w, b: x.reshape(x.shape[0], -1) @ w},
    backward_mistakes={  # of another shape than db: named by the shape problem when the numbers prove it
        "db": {"db sums dout over the wrong axis: sum over the examples, dout.sum(dim=0)": lambda v: v.dout.sum(1)}
    },
    grad_hints={
        "dx": "dx has the shape of x, {shape}: reshape dout @ w.T back to it.",
        "dw": "dw has the shape of w, {shape}: (flattened x).T @ dout.",
        "db": "db has the shape of b, {shape}: sum dout over the examples.",
    },
)


def linear_problem(ctx, N, shape, M, dtype):
    D = math.prod(shape)
    return [ctx.randn(N, *shape, dtype=dtype), ctx.randn(D, M, dtype=dtype, scale=0.5), ctx.randn(M, dtype=dtype)]


@check("a3.fully_connected.linear_forward", function="Linear", N=3, shape=(2, 3, 4), M=5, dtype=f64)
def linear_forward(ctx, N, shape, M, dtype):
    """Linear.forward: out = x (each example flattened) @ w + b"""
    x, w, b = linear_problem(ctx, N, shape, M, dtype)
    judge_forward(
        ctx,
        LINEAR,
        [x, w, b],
        what=describe({"x": x, "w": w}),
        hint=f"out is (N, M) = {fmt_shape((N, M))}: flatten each example of x into a row of "
        f"D = {w.shape[0]} numbers first.",
    )


@check("a3.fully_connected.linear_backward", function="Linear", N=4, shape=(3, 5), M=6, dtype=f64)
def linear_backward(ctx, N, shape, M, dtype):
    """Linear.backward: dx, dw, db match autograd"""
    x, w, b = linear_problem(ctx, N, shape, M, dtype)
    judge_backward(ctx, LINEAR, [x, w, b], what=describe({"x": x, "w": w}), n=N)


def relu_at_zero(v, got: tuple) -> dict:
    """ReLU's gradient at exactly 0 may be 0 or 1 (both are subgradients): where x == 0, dx may be 0 or dout."""
    dx, g = v.dx, got[0]
    if isinstance(g, torch.Tensor) and g.shape == dx.shape:
        passed = (v.x == 0) & ((cpu64(g) - v.dout).abs() <= 1e-6 * v.dout.abs())
        dx = torch.where(passed, v.dout, dx)
    return {"dx": dx}


RELU = Layer(
    "ReLU",
    ("x",),
    reference=F.relu,
    forward_mistakes={
        "out is x: the negative entries must become 0": lambda x: x,
        "the positive entries are zeroed, not the negative ones": lambda x: x.clamp(max=0),
    },
    backward_mistakes={
        "dx": {
            "dx is dout everywhere: zero it where x < 0": lambda v: v.dout,
            "dx is dout * relu(x); ReLU's derivative is 1 where x > 0 and 0 where x < 0": lambda v: (
                v.dout * F.relu(v.x)
            ),
        }
    },
    accepted=relu_at_zero,
)


def relu_input(ctx, shape, dtype, zeros: bool):
    x = ctx.randn(*shape, dtype=dtype)
    if zeros:  # exact zeros: ReLU's gradient there may be 0 or 1
        x = torch.where(ctx.rand(*shape) < 0.2, torch.zeros_like(x), x)
    return x


@check("a3.fully_connected.relu_forward", function="ReLU", shape=(5, 7), dtype=f64, zeros=False)
def relu_forward(ctx, shape, dtype, zeros):
    """ReLU.forward: max(0, x), x unchanged"""
    x = relu_input(ctx, shape, dtype, zeros)
    judge_forward(ctx, RELU, [x], what=describe({"x": x}))


@check("a3.fully_connected.relu_backward", function="ReLU", shape=(4, 3, 5), dtype=f64, zeros=True)
def relu_backward(ctx, shape, dtype, zeros):
    """ReLU.backward: the gradient passes where x > 0 (at x = 0 either 0 or 1 is fine)"""
    x = relu_input(ctx, shape, dtype, zeros)
    judge_backward(ctx, RELU, [x], what=describe({"x": x}))


# ---- Dropout --------------------------------------------------------------------------------------


@check("a3.fully_connected.dropout_test_mode", function="Dropout", shape=(20, 30), p=0.6, dtype=f64)
def dropout_test_mode(ctx, shape, p, dtype):
    """Dropout in test mode is the identity (forward and backward)"""
    x = ctx.randn(*shape, dtype=dtype)
    reply = ctx.invoke("Dropout.forward", x, {"mode": "test", "p": p}, return_args=True)
    ctx.expect_unchanged([x], reply, ["x"])
    out, cache = ctx.expect_items(reply.value, 2, "the result of Dropout.forward (out, cache)")
    ctx.expect_tensor(
        out,
        x,
        f"out in test mode (p={p:g})",
        bound=0.0,
        mistakes={
            f"test mode scales x by 1 - p = {1 - p:g}; inverted dropout does nothing at test time": cpu64(x) * (1 - p)
        },
    )
    dout = ctx.randn(*shape, dtype=dtype)
    ctx.expect_tensor(ctx.call("Dropout.backward", dout, cache), dout, "dx in test mode", bound=0.0)


def dropout_stats(ctx, p: float, dtype: torch.dtype, shape=(500, 400), seed=None):
    """Run Dropout.forward in train mode on positive x; (x, out, cache) after the layout checks."""
    x = 1 + side_randn(ctx, *shape, dtype=dtype).abs()  # positive: a zero output is a dropped unit
    param = {"mode": "train", "p": p} if seed is None else {"mode": "train", "p": p, "seed": seed}
    reply = ctx.invoke("Dropout.forward", x, param, return_args=True)
    ctx.expect_unchanged([x], reply, ["x"])
    out, cache = ctx.expect_items(reply.value, 2, "the result of Dropout.forward (out, cache)")
    ctx.expect_layout(out, tuple(x.shape), dtype, f"out in train mode (p={p:g})")
    return x, out, cache


@check("a3.fully_connected.dropout_train", function="Dropout", p=0.3, dtype=f64)
def dropout_train(ctx, p, dtype):
    """Dropout in train mode drops a fraction p, scales the rest by 1/(1-p), keeps the mean"""
    x, out, _ = dropout_stats(ctx, p, dtype)
    X, O_ = cpu64(x), cpu64(out)
    n = X.numel()
    dropped = (O_ == 0).double().mean().item()
    tol = 6 * math.sqrt(p * (1 - p) / n) + 1e-3 if 0 < p < 1 else 1e-12
    if abs(dropped - p) > tol:
        why = (
            " Likely bug: p is taken as the probability of KEEPING a unit; in this course p is the probability of "
            "dropping one (keep each with probability 1 - p)."
            if abs(dropped - (1 - p)) <= tol
            else ""
        )
        ctx.fail(
            f"with p={p:g} a fraction {dropped:.4f} of the {n} units was dropped (zero); expected about {p:g}." + why,
            mistakes=["p is taken as the probability of keeping a unit"] if why else [],
        )
    kept = O_ != 0
    if kept.any():
        ratio = O_[kept] / X[kept]
        want = 1 / (1 - p)
        if rel_error(ratio, torch.full_like(ratio, want)) > bound(dtype, FWD):
            seen = ratio.median().item()
            known = (
                {
                    f"the kept units are scaled by 1/p = {1 / p:.4g}; inverted dropout scales them by "
                    f"1/(1 - p) = {want:.4g}": 1 / p,
                    f"the kept units are multiplied by p = {p:g}; inverted dropout scales them by 1/(1 - p)": p,
                    f"the kept units are multiplied by 1 - p = {1 - p:g}; inverted dropout divides by it": 1 - p,
                    "the kept units are not scaled; inverted dropout scales them by 1/(1 - p) so that the expected "
                    "output equals the input": 1.0,
                }
                if p > 0
                else {}
            )
            why = next((d for d, v in known.items() if abs(seen / v - 1) < 1e-6), None)
            ctx.fail(
                f"with p={p:g} the kept units should equal x / (1 - p) = {want:.4g} x; found out / x = "
                f"{seen:.4g} (median over the kept units)." + (f" Likely bug: {why}." if why else ""),
                mistakes=[why] if why else [],
            )
    m_in, m_out = X.mean().item(), O_.mean().item()
    if abs(m_out / m_in - 1) > 0.02:
        ctx.fail(
            f"in train mode the mean of out ({m_out:.4f}) should be close to the mean of x ({m_in:.4f}): "
            "drop with probability p and scale what is kept by 1/(1 - p)."
        )
    ctx.note(f"p={p:g}: dropped {100 * dropped:.2f}% of {n} units, mean {m_in:.4f} -> {m_out:.4f}")


@check("a3.fully_connected.dropout_backward", function="Dropout", p=0.4, dtype=f64, shape=(30, 40))
def dropout_backward(ctx, p, dtype, shape):
    """Dropout.backward: the gradient flows only through the kept units, scaled by 1/(1-p)"""
    x, out, cache = dropout_stats(ctx, p, dtype, shape=shape, seed=123)
    dout = ctx.randn(*shape, dtype=dtype)
    got = ctx.call("Dropout.backward", dout, cache)
    X, O_, D = cpu64(x), cpu64(out), cpu64(dout)
    scale_kept = O_ / X  # 1/(1 - p) where kept, 0 where dropped: the layer's own mask
    expect_grads(
        ctx,
        got,
        [("dx", D * scale_kept)],
        f"Dropout.backward, train mode, p={p:g}",
        dtype,
        bound(dtype, BWD),
        mistakes={
            "dx": {
                "dx is dout: in train mode the gradient flows only through the kept units": D,
                "dx is not scaled: the kept units' gradient is dout / (1 - p), as in forward": D * (O_ != 0),
                "dx is scaled by p instead of 1/(1 - p)": D * (O_ != 0) * p,
            }
        },
    )


@check("a3.fully_connected.dropout_seed", function="Dropout", p=0.5, dtype=f64, shape=(40, 50))
def dropout_seed(ctx, p, dtype, shape):
    """Dropout: a seed in dropout_param repeats the mask; another seed draws another"""
    x = 1 + ctx.randn(*shape, dtype=dtype).abs()
    outs = []
    for seed in (17, 17, 18):
        out, _ = ctx.expect_items(
            ctx.call("Dropout.forward", x, {"mode": "train", "p": p, "seed": seed}),
            2,
            "the result of Dropout.forward (out, cache)",
        )
        ctx.expect_layout(out, tuple(x.shape), dtype, "out in train mode")
        outs.append(out)
    if not same(outs[0], outs[1]):
        ctx.fail(
            "two calls with the same dropout_param['seed'] (17) dropped different units; when a seed is given, "
            "seed the random number generator with it (torch.manual_seed) before drawing the mask."
        )
    if same(outs[0], outs[2]):
        ctx.fail("the seeds 17 and 18 dropped the same units: draw the mask after seeding with dropout_param['seed'].")
    out, _ = ctx.expect_items(
        ctx.call("Dropout.forward", x, {"mode": "train", "p": 0.0}), 2, "the result of Dropout.forward (out, cache)"
    )
    ctx.expect_tensor(
        out,
        x,
        "out in train mode with p=0 (nothing is dropped)",
        bound=bound(dtype, FWD),
        mistakes={
            "everything is dropped with p=0: the kept units are multiplied by p; inverted dropout "
            "keeps each unit with probability 1 - p and scales it by 1/(1 - p)": 0 * cpu64(x)
        },
    )


# ---- TwoLayerNet and FullyConnectedNet ----------------------------------------------------------


def two_layer_shapes(D, H, C):
    return {"W1": (D, H), "b1": (H,), "W2": (H, C), "b2": (C,)}


@check("a3.fully_connected.two_layer_init", function="TwoLayerNet", D=200, H=150, C=7, weight_scale=0.05, dtype=f64)
def two_layer_init(ctx, D, H, C, weight_scale, dtype):
    """TwoLayerNet: params W1, b1, W2, b2 with weights N(0, weight_scale^2), zero biases"""
    kwargs = {} if dtype is None else {"dtype": dtype}
    model = build(
        ctx,
        "TwoLayerNet",
        input_dim=D,
        hidden_dim=H,
        num_classes=C,
        weight_scale=weight_scale,
        device=str(ctx.device),
        **kwargs,
    )
    dtype = dtype or torch.float32
    params = ctx.getattr(model, "params")
    what = (
        f"TwoLayerNet(input_dim={D}, hidden_dim={H}, num_classes={C}, weight_scale={weight_scale:g}, "
        f"{dtype_name(dtype)})"
    )
    shapes = two_layer_shapes(D, H, C)
    expect_params(
        ctx,
        params,
        shapes,
        dtype,
        what,
        hint="W1 (input_dim, hidden_dim), b1 (hidden_dim,), W2 (hidden_dim, num_classes), b2 (num_classes,), "
        "in the dtype asked for (float32 by default), on the device asked for.",
    )
    expect_initial(ctx, params, shapes, weight_scale, what)


@check("a3.fully_connected.two_layer_loss", function="TwoLayerNet", N=7, shape=(3, 4, 4), H=10, C=5, reg=0.1, dtype=f64)
def two_layer_loss(ctx, N, shape, H, C, reg, dtype):
    """TwoLayerNet.loss: scores, loss and every gradient match autograd (L2 on the weights only)"""
    D = math.prod(shape)
    model = build(
        ctx,
        "TwoLayerNet",
        input_dim=D,
        hidden_dim=H,
        num_classes=C,
        weight_scale=0.1,
        reg=reg,
        dtype=dtype,
        device=str(ctx.device),
    )
    shapes = two_layer_shapes(D, H, C)
    expect_params(ctx, ctx.getattr(model, "params"), shapes, dtype, "TwoLayerNet")
    params = random_params(ctx, shapes, dtype, 0.4, 0.4)
    set_params(ctx, model, params)
    X, y = ctx.randn(N, *shape, dtype=dtype), ctx.randint(0, C, (N,))
    judge_net_loss(
        ctx,
        model,
        "TwoLayerNet",
        params,
        X,
        y,
        reg,
        E.two_layer_scores,
        f"(N={N}, D={D}, H={H}, C={C}, reg={reg:g}, {dtype_name(dtype)})",
    )


def fc_shapes(hidden_dims, D, C):
    dims = [D, *hidden_dims, C]
    out = {}
    for i in range(1, len(dims)):
        out[f"W{i}"], out[f"b{i}"] = (dims[i - 1], dims[i]), (dims[i],)
    return out


@check(
    "a3.fully_connected.fc_init",
    function="FullyConnectedNet",
    hidden_dims=(60, 50, 40),
    D=120,
    C=9,
    weight_scale=0.05,
    dtype=f64,
)
def fc_init(ctx, hidden_dims, D, C, weight_scale, dtype):
    """FullyConnectedNet: params W1..WL, b1..bL chained through hidden_dims; N(0, weight_scale^2) weights"""
    kwargs = {} if dtype is None else {"dtype": dtype}
    model = build(
        ctx,
        "FullyConnectedNet",
        hidden_dims=list(hidden_dims),
        input_dim=D,
        num_classes=C,
        weight_scale=weight_scale,
        device=str(ctx.device),
        **kwargs,
    )
    dtype = dtype or torch.float32
    params = ctx.getattr(model, "params")
    what = f"FullyConnectedNet({list(hidden_dims)}, input_dim={D}, num_classes={C}, {dtype_name(dtype)})"
    shapes = fc_shapes(hidden_dims, D, C)
    expect_params(
        ctx,
        params,
        shapes,
        dtype,
        what,
        hint="layer i maps the previous layer's output (the input for i = 1) to hidden_dims[i - 1] "
        "(num_classes for the last layer).",
    )
    expect_initial(ctx, params, shapes, weight_scale, what)


@check(
    "a3.fully_connected.fc_loss",
    function="FullyConnectedNet",
    N=6,
    hidden_dims=(7, 5),
    D=8,
    C=4,
    reg=0.05,
    dtype=f64,
    dropout=0.0,
)
def fc_loss(ctx, N, hidden_dims, D, C, reg, dtype, dropout):
    """FullyConnectedNet.loss: scores, loss and every gradient match autograd"""
    kwargs = {"dropout": dropout, "seed": 123} if dropout else {}
    model = build(
        ctx,
        "FullyConnectedNet",
        hidden_dims=list(hidden_dims),
        input_dim=D,
        num_classes=C,
        reg=reg,
        weight_scale=0.1,
        dtype=dtype,
        device=str(ctx.device),
        **kwargs,
    )
    shapes = fc_shapes(hidden_dims, D, C)
    expect_params(ctx, ctx.getattr(model, "params"), shapes, dtype, "FullyConnectedNet")
    params = random_params(ctx, shapes, dtype, 0.5, 0.3)
    set_params(ctx, model, params)
    X, y = ctx.randn(N, D, dtype=dtype), ctx.randint(0, C, (N,))
    what = f"(hidden_dims={list(hidden_dims)}, reg={reg:g}, dropout={dropout:g}, {dtype_name(dtype)})"
    if not dropout:
        judge_net_loss(ctx, model, "FullyConnectedNet", params, X, y, reg, E.fc_scores, what)
        return
    # The masks: the Dropout of this submission, seeded as the net seeds it (every Dropout.forward call reseeds with
    # seed=123, so the mask of layer i depends only on its shape (N, hidden_dims[i])).
    masks = []
    for h in hidden_dims:
        ones = torch.ones(N, h, dtype=dtype, device=ctx.device)
        out, _ = ctx.expect_items(
            ctx.call("Dropout.forward", ones, {"mode": "train", "p": dropout, "seed": 123}),
            2,
            "the result of Dropout.forward (out, cache)",
        )
        ctx.expect_layout(out, (N, h), dtype, "Dropout.forward's out")
        masks.append(cpu64(out))

    def test_mistakes(q, Xc):
        return {
            "dropout is applied in test mode too (loss(X) runs the net in test mode: no dropout)": E.fc_scores(
                q, Xc, masks
            )
        }

    judge_net_loss(
        ctx,
        model,
        "FullyConnectedNet",
        params,
        X,
        y,
        reg,
        lambda p, X_: E.fc_scores(p, X_, masks),
        what,
        test_scores=E.fc_scores,
        test_mistakes=test_mistakes,
    )


# ---- update rules -------------------------------------------------------------------------------

DEFAULTS = {  # the defaults of the docstrings, and the state each rule keeps in its config
    "sgd_momentum": ({"learning_rate": 1e-2, "momentum": 0.9}, ("velocity",)),
    "rmsprop": ({"learning_rate": 1e-2, "decay_rate": 0.99, "epsilon": 1e-8}, ("cache",)),
    "adam": ({"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}, ("m", "v", "t")),
}


def rule_mistakes(rule: str, w0, dws, hyper: dict) -> dict[str, list[torch.Tensor]]:
    """next_w after each step for the rule's well-known mistakes (float64)."""
    lr = hyper["learning_rate"]

    def run(step):
        cur, state, outs = cpu64(w0), {}, []
        for t, d in enumerate(dws, start=1):
            cur = step(cur, cpu64(d), state, t)
            outs.append(cur)
        return outs

    seqs = {}
    if rule == "sgd_momentum":
        mu = hyper["momentum"]

        def old_velocity(cur, d, s, t):
            v_old = s.get("v", torch.zeros_like(cur))
            s["v"] = mu * v_old - lr * d
            return cur + v_old

        seqs["w is moved by the previous velocity: update v first, then next_w = w + v"] = run(old_velocity)
        seqs["the momentum is ignored (plain SGD)"] = run(lambda cur, d, s, t: cur - lr * d)
    elif rule == "rmsprop":
        rho, eps = hyper["decay_rate"], hyper["epsilon"]

        def cached(denominator):
            def step(cur, d, s, t):
                s["c"] = rho * s.get("c", torch.zeros_like(cur)) + (1 - rho) * d * d
                return cur - lr * d / denominator(s["c"])

            return step

        def fresh(cur, d, s, t):
            return cur - lr * d / (torch.sqrt((1 - rho) * d * d) + eps)

        def adagrad(cur, d, s, t):
            s["c"] = s.get("c", torch.zeros_like(cur)) + d * d
            return cur - lr * d / (torch.sqrt(s["c"]) + eps)

        seqs["epsilon is added inside the square root; add it to sqrt(cache)"] = run(
            cached(lambda c: torch.sqrt(c + eps))
        )
        seqs["the square root is missing: divide dw by sqrt(cache) + epsilon, not by cache + epsilon"] = run(
            cached(lambda c: c + eps)
        )
        seqs["the cache is not kept between steps: store it in config['cache']"] = run(fresh)
        seqs["the cache is not decayed (cache += dw * dw): cache = decay_rate * cache + (1 - decay_rate) * dw * dw"] = (
            run(adagrad)
        )
    else:
        b1, b2, eps = hyper["beta1"], hyper["beta2"], hyper["epsilon"]

        def adam_like(correct: bool, carry: bool):
            def step(cur, d, s, t):
                m = b1 * (s.get("m", 0 * d) if carry else 0 * d) + (1 - b1) * d
                v = b2 * (s.get("v", 0 * d) if carry else 0 * d) + (1 - b2) * d * d
                s["m"], s["v"] = m, v
                k = t if carry else 1
                if correct:
                    m, v = m / (1 - b1**k), v / (1 - b2**k)
                return cur - lr * m / (v.sqrt() + eps)

            return step

        seqs["no bias correction: divide m by (1 - beta1 ** t) and v by (1 - beta2 ** t)"] = run(adam_like(False, True))
        seqs["m, v and t are not kept between steps: store them back in config"] = run(adam_like(True, False))
    return seqs


def judge_rule(ctx, rule: str, hyper: dict | None, steps: int, shape: tuple, dtype: torch.dtype) -> None:
    """`steps` calls of the rule, each given the config the previous one returned. The rule may update w in place or
    return a new tensor (both are fine); it must leave dw as it is."""
    defaults, state_keys = DEFAULTS[rule]
    full = dict(defaults, **(hyper or {}))
    w = ctx.randn(*shape, dtype=dtype)
    dws = [ctx.randn(*shape, dtype=dtype) for _ in range(steps)]
    want = E.torch_steps(rule, cpu64(w), [cpu64(d) for d in dws], full)
    alts = rule_mistakes(rule, w, dws, full)
    tol = bound(dtype, 1e-8)
    config = None if hyper is None else dict(hyper)
    setting = (
        "config=None (the defaults)" if hyper is None else "config " + ", ".join(f"{k}={v:g}" for k, v in hyper.items())
    )
    cur = w
    for k, dw in enumerate(dws):
        args = (cur, dw) if config is None else (cur, dw, config)
        reply = ctx.invoke(rule, *args, return_args=True)
        if not same(dw, reply.args[1]):
            ctx.fail(f"{rule} modified its input dw; it may update w (in place or not) but must leave dw unchanged.")
        next_w, config = ctx.expect_items(reply.value, 2, f"the result of {rule} (next_w, config)")
        what = f"step {k + 1} of {steps} with {setting}" + (", passing back the config returned" if k else "")
        ctx.expect_layout(next_w, tuple(shape), dtype, f"next_w ({what})")
        if k == 0 and rule == "adam" and not torch.isfinite(next_w.cpu()).all():
            ctx.fail(
                f"next_w ({what}) holds nan or inf. Likely bug: t is incremented after the bias correction; "
                "increment it first, so the first step uses t = 1 (1 - beta1 ** 0 = 0 divides by zero).",
                mistakes=["t is incremented after the bias correction"],
            )
        step_got, step_want = cpu64(next_w) - cpu64(cur), want[k][0] - cpu64(cur)
        mistakes = {d: seq[k] - cpu64(cur) for d, seq in alts.items()}
        ctx.expect_tensor(
            step_got, step_want, f"the step next_w - w ({what})", bound=tol, device=None, mistakes=mistakes
        )
        ctx.expect_type(config, dict, f"the config returned by {rule} ({what})")
        for key, value in defaults.items():
            if hyper is None or key not in hyper:
                got = config.get(key)
                ctx.expect(
                    isinstance(got, (int, float)) and not isinstance(got, bool) and abs(got - value) <= 1e-15,
                    f"config['{key}'] ({what}): expected the default {value:g}, found {describe_value(got)}.",
                )
        for key in state_keys:
            ctx.expect(
                key in config,
                f"config ({what}): expected config['{key}'], the rule's state, to be stored "
                f"for the next step; found the keys {sorted(config)}.",
            )
            if key == "t":
                ctx.expect(
                    config["t"] == want[k][1]["t"] and not isinstance(config["t"], bool),
                    f"config['t'] ({what}): expected {want[k][1]['t']}, the number of steps taken so far; "
                    f"found {describe_value(config['t'])}.",
                )
            else:
                ctx.expect_tensor(config[key], want[k][1][key].to(dtype), f"config['{key}'] ({what})", bound=tol)
        cur = next_w


@check(
    "a3.fully_connected.sgd_momentum",
    function="sgd_momentum",
    steps=4,
    shape=(5, 4),
    dtype=f64,
    hyper={"learning_rate": 0.05, "momentum": 0.8},
)
def sgd_momentum(ctx, steps, shape, dtype, hyper):
    """sgd_momentum: v = momentum * v - lr * dw; next_w = w + v, over several steps"""
    judge_rule(ctx, "sgd_momentum", hyper, steps, shape, dtype)


@check(
    "a3.fully_connected.rmsprop",
    function="rmsprop",
    steps=4,
    shape=(3, 6),
    dtype=f64,
    hyper={"learning_rate": 0.02, "decay_rate": 0.9, "epsilon": 1e-6},
)
def rmsprop(ctx, steps, shape, dtype, hyper):
    """rmsprop: the moving average of dw * dw scales each step, over several steps"""
    judge_rule(ctx, "rmsprop", hyper, steps, shape, dtype)


@check(
    "a3.fully_connected.adam",
    function="adam",
    steps=5,
    shape=(4, 5),
    dtype=f64,
    hyper={"learning_rate": 0.01, "beta1": 0.8, "beta2": 0.95, "epsilon": 1e-6},
)
def adam(ctx, steps, shape, dtype, hyper):
    """adam: moving averages with bias correction (t counted from 1), over several steps"""
    judge_rule(ctx, "adam", hyper, steps, shape, dtype)


defaults = [
    variant(
        sgd_momentum,
        "defaults",
        hidden=False,
        steps=2,
        shape=(7,),
        hyper=None,
        title="sgd_momentum: config=None uses learning_rate 1e-2, momentum 0.9",
    ),
    variant(
        rmsprop,
        "defaults",
        hidden=False,
        steps=2,
        shape=(7,),
        hyper=None,
        title="rmsprop: config=None uses learning_rate 1e-2, decay_rate 0.99, epsilon 1e-8",
    ),
    variant(
        adam,
        "defaults",
        hidden=False,
        steps=2,
        shape=(7,),
        hyper=None,
        title="adam: config=None uses learning_rate 1e-3, beta1 0.9, beta2 0.999, epsilon 1e-8",
    ),
    variant(
        fc_loss,
        "dropout",
        hidden=False,
        N=6,
        hidden_dims=(7, 5),
        D=8,
        C=3,
        reg=0.1,
        dropout=0.3,
        title="FullyConnectedNet with dropout: a dropout after each hidden ReLU in training, none at test time",
    ),
]


# ---- training: solver instances and overfitting ---------------------------------------------------


@check("a3.fully_connected.create_solver_instance", function="create_solver_instance", timeout=600.0)
def create_solver_instance(ctx):
    """create_solver_instance: its TwoLayerNet, trained by the grader's Solver, reaches the target on held-out data"""

    def layout(params):
        W1 = params.get("W1")
        H = W1.shape[1] if isinstance(W1, torch.Tensor) and W1.dim() == 2 else 1
        expect_params(ctx, params, two_layer_shapes(3 * 32 * 32, H, 10), torch.float32, "solver.model")

    judge_solver(
        ctx,
        "create_solver_instance",
        "TwoLayerNet",
        FC_MODULE,
        flatten=True,
        prefix="fc",
        target_key="two_layer_solver_accuracy",
        layout=layout,
        evaluate=lambda model, q, X, trained: E.two_layer_scores(q, X.to(q["W1"].dtype)),
        describe=lambda q: f"TwoLayerNet with {q['W1'].shape[1]} hidden units",
        advice="tune the hidden size, weight scale, learning rate (and its decay) and regularisation on the "
        "validation set.",
    )


@check(
    "a3.fully_connected.three_layer_overfit",
    function="get_three_layer_network_params",
    timeout=300.0,
    hidden_dims=(100, 100),
)
def three_layer_overfit(ctx, hidden_dims):
    """get_three_layer_network_params: FullyConnectedNet([100, 100]) overfits 50 images in 20 epochs"""
    judge_overfit(
        ctx,
        "get_three_layer_network_params",
        "FullyConnectedNet",
        FC_MODULE,
        {"hidden_dims": list(hidden_dims)},
        E.fc_scores,
        {"num_epochs": 20, "batch_size": 25},
        "sgd",
    )


@check(
    "a3.fully_connected.five_layer_overfit",
    function="get_five_layer_network_params",
    timeout=300.0,
    hidden_dims=(100, 100, 100, 100),
)
def five_layer_overfit(ctx, hidden_dims):
    """get_five_layer_network_params: FullyConnectedNet([100] * 4) overfits 50 images in 20 epochs"""
    judge_overfit(
        ctx,
        "get_five_layer_network_params",
        "FullyConnectedNet",
        FC_MODULE,
        {"hidden_dims": list(hidden_dims)},
        E.fc_scores,
        {"num_epochs": 20, "batch_size": 25},
        "sgd",
    )
