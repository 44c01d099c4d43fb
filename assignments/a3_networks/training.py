"""Judging A3's training choices (shared by checks_fc.py and checks_conv.py; it defines no checks).

The student chooses a model and hyperparameters; the grader trains the model with the kit's own Solver
(dlcv.solver, staged from the kit) under its own caps, reads the trained parameters back, and measures the
accuracy here, on data whose labels never enter the sandbox. A model that cannot train because a layer of it is
broken is judged again by the grader with the course's layer in its place (the manifest's [parts.blocks]).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from grader.judging import course_data, cpu64, describe_value
from grader.wire import Handle

from .layers import FC_MODULE, GIVEN_MODULE
from .nets import build

# How much the checks that train do, per data set. digits (the offline stand-in) trains on the CPU: the two-layer
# solver gets at most fc_epochs epochs, the convolutional one conv_epochs (deterministic, a few seconds each for the
# reference). cifar10: the course's final runs, as many epochs as the student asked for within the time limits (the
# convolutional one: 60 s on a GPU). A limit is the Solver's train(time_limit=...); the call itself is stopped at
# 1.5 times the limit plus 30 s. *_train_samples caps the training images the Solver measures its (reported)
# training accuracy on each epoch: it does not change the training, only saves time.
SCALE = {
    "digits": {
        "fc_epochs": 20,
        "fc_time_limit": 30.0,
        "fc_train_samples": 100,
        "conv_epochs": 2,
        "conv_time_limit": 60.0,
        "conv_train_samples": 100,
    },
    "cifar10": {
        "fc_epochs": None,
        "fc_time_limit": 120.0,
        "fc_train_samples": None,
        "conv_epochs": None,
        "conv_time_limit": 60.0,
        "conv_train_samples": None,
    },
}
UPDATE_RULES = ("sgd", "sgd_momentum", "rmsprop", "adam")
OPTIM_KEYS = ("learning_rate", "momentum", "decay_rate", "epsilon", "beta1", "beta2")
BUILD_TIMEOUT = 60.0  # create_*_solver_instance builds a model and a Solver; the grader trains it
UNTRAINED = 30.0  # percent on held-out data above which the model handed over counts as trained already


def accuracy(scores: torch.Tensor, y: torch.Tensor) -> float:
    """Percent of rows whose highest score is the label."""
    return 100.0 * (scores.argmax(1).cpu() == y.cpu()).double().mean().item()


def on_device(ctx, data: dict, keys=("X_train", "y_train", "X_val", "y_val")) -> dict:
    return {k: data[k].to(ctx.device) for k in keys}


def solver_choice(ctx, solver: Any, function: str, model_type: str, module: str) -> dict:
    """What the student chose, read from the Solver their function returned: the model (their class) and the
    hyperparameters. Nothing else of it is used: the grader trains with the kit's own Solver."""
    ctx.expect(
        isinstance(solver, Handle) and solver.type == "Solver",
        f"{function} should return a Solver (from dlcv); found {describe_value(solver)}.",
    )
    model = ctx.getattr(solver, "model")
    ctx.expect(
        isinstance(model, Handle) and model.type == model_type,
        f"the Solver returned by {function} should train a {model_type}; its model is {describe_value(model)}.",
    )
    origin = ctx.getattr(model, "__class__.__module__")
    ctx.expect(
        origin == module,
        f"the Solver returned by {function} should train your {model_type} (from {module}); "
        f"its model's class comes from {describe_value(origin)}.",
    )
    rule = ctx.getattr(solver, "update_rule.__name__")
    ctx.expect(
        isinstance(rule, str) and rule in UPDATE_RULES,
        f"solver.update_rule: expected one of the update rules of fully_connected_networks.py "
        f"({', '.join(UPDATE_RULES)}); found {describe_value(rule)}. The grader trains your model with the "
        "rule of that name.",
    )
    config = ctx.getattr(solver, "optim_config")
    ctx.expect(
        isinstance(config, dict)
        and all(
            isinstance(k, str)
            and k in OPTIM_KEYS
            and isinstance(v, (int, float))
            and not isinstance(v, bool)
            and math.isfinite(v)
            for k, v in config.items()
        ),
        f"solver.optim_config: expected a dict of the update rule's hyperparameters ({', '.join(OPTIM_KEYS)}) with "
        f"numbers as values; found {describe_value(config)}.",
    )
    choice = {
        "model": model,
        "update_rule": rule,
        "optim_config": dict(config),
        "lr_decay": ctx.expect_float(ctx.getattr(solver, "lr_decay"), "solver.lr_decay", positive=True),
    }
    for name in ("batch_size", "num_epochs"):
        v = ctx.getattr(solver, name)
        ctx.expect(
            isinstance(v, int) and not isinstance(v, bool) and v > 0,
            f"solver.{name}: expected a positive int, found {describe_value(v)}.",
        )
        choice[name] = v
    return choice


EVAL_CHUNK = 50  # test images per forward pass in the judge: float64 activations of a conv net add up fast


def scores_of(evaluate: Callable, model: Any, params: dict, X: torch.Tensor, trained: bool) -> torch.Tensor:
    """evaluate(model, params, X, trained) in chunks of EVAL_CHUNK images, so that the judge's memory stays small."""
    with torch.no_grad():
        return torch.cat(
            [evaluate(model, params, X[i : i + EVAL_CHUNK], trained) for i in range(0, len(X), EVAL_CHUNK)]
        )


def judge_solver(
    ctx,
    function: str,
    model_type: str,
    module: str,
    *,
    flatten: bool,
    prefix: str,
    target_key: str,
    evaluate: Callable,
    describe: Callable,
    layout: Callable,
    advice: str,
) -> None:
    """Build the student's Solver, take its model and hyperparameters, train the model with the kit's own Solver
    under the grader's epoch cap and time limit, and judge the trained parameters on held-out data here.
    `evaluate(model, params, X, trained)` gives the scores of the float64 parameters on X."""
    data = course_data(ctx, flatten=flatten)
    hdata = ctx.put(on_device(ctx, data))
    solver = ctx.call(function, hdata, torch.float32, str(ctx.device), timeout=BUILD_TIMEOUT)
    choice = solver_choice(ctx, solver, function, model_type, module)
    model, rule = choice["model"], choice["update_rule"]
    start = ctx.getattr(model, "params")
    ctx.expect_type(start, dict, "solver.model.params")
    layout(start)
    X_test, y_test = cpu64(data["X_test"]), data["y_test"]
    try:
        # 100 images tell an untrained model (about 10%) from a trained one, at a third of the judge's time
        before = accuracy(scores_of(evaluate, model, cpu64(start), X_test[:100], False), y_test[:100])
    except (KeyError, RuntimeError, IndexError, TypeError, ValueError):
        before = 0.0  # judged after training
    ctx.expect(
        before <= UNTRAINED,
        f"the model of the Solver returned by {function} is trained already ({before:.0f}% "
        "on held-out data before training): return an untrained model; the grader "
        "trains it with the hyperparameters you chose.",
    )
    scale = ctx.scale(SCALE)
    epochs, cap, limit = choice["num_epochs"], scale[f"{prefix}_epochs"], scale[f"{prefix}_time_limit"]
    run = min(epochs, cap) if cap is not None else epochs
    # the rule of that name: the kit's given sgd, or the student's own (graded) rule
    rule_ref = ctx.ref(rule, module=GIVEN_MODULE if rule == "sgd" else FC_MODULE)
    kwargs = {
        "update_rule": rule_ref,
        "optim_config": choice["optim_config"],
        "lr_decay": choice["lr_decay"],
        "batch_size": choice["batch_size"],
        "num_epochs": run,
        "device": str(ctx.device),
        "verbose": False,
    }
    if scale[f"{prefix}_train_samples"] is not None:
        kwargs["num_train_samples"] = scale[f"{prefix}_train_samples"]
    kit = ctx.call(ctx.ref("Solver", module="dlcv.solver"), model, hdata, **kwargs)
    trained = ctx.invoke_method(kit, "train", time_limit=limit, timeout=1.5 * limit + 30)
    params = ctx.getattr(model, "params")
    ctx.expect_type(params, dict, "solver.model.params")
    layout(params)
    q = cpu64(params)
    try:
        scores = scores_of(evaluate, model, q, X_test, True)
    except (KeyError, RuntimeError, IndexError, TypeError, ValueError) as e:
        ctx.fail(f"the trained {model_type}'s params could not be evaluated as a {model_type}'s ({e}).")
    acc, target = accuracy(scores, y_test), ctx.target(target_key)
    shown = f"{run} of its {epochs} epochs" if run < epochs else f"{epochs} epoch{'s' if epochs > 1 else ''}"
    ctx.note(
        f"{describe(q)}, trained by the grader's Solver ({rule} with optim_config {choice['optim_config']}, "
        f"lr_decay {choice['lr_decay']:g}, batch {choice['batch_size']}, {shown}, time limit {limit:g} s; "
        f"{trained.seconds:.1f} s): {acc:.1f}% on the held-out test split of {ctx.dataset_name} "
        f"(target {target:g}%)"
    )
    capped = (
        f"the grader trains at most {run} epochs here (on {ctx.dataset_name}), so asking for more does not change "
        "this result; "
        if run < epochs
        else ""
    )
    ctx.expect(
        acc >= target,
        f"the trained {model_type} reaches {acc:.1f}% on held-out data, below the target {target:g}%: {capped}{advice}",
    )


def overfit_data(ctx, n: int = 50) -> dict:
    data = course_data(ctx, flatten=False)
    return {
        "X_train": data["X_train"][:n],
        "y_train": data["y_train"][:n],
        "X_val": data["X_val"][:n],
        "y_val": data["y_val"][:n],
    }


def judge_overfit(
    ctx, function: str, unit: str, module: str, make: dict, scores: Callable, solver_kw: dict, rule: str
) -> None:
    """`function()` -> (weight_scale, learning_rate): the student's `unit` built with them (float32, the course's
    images and classes) and trained by the kit's Solver with `rule` reaches 100% on 50 training images."""
    ws, lr = ctx.expect_items(ctx.call(function), 2, f"the result of {function} (weight_scale, learning_rate)")
    ws = ctx.expect_float(ws, "weight_scale", positive=True)
    lr = ctx.expect_float(lr, "learning_rate", positive=True)
    small = overfit_data(ctx)
    hsmall = ctx.put(on_device(ctx, small))
    epochs, batch = solver_kw["num_epochs"], solver_kw["batch_size"]
    setting = (
        f"{unit}({', '.join(f'{k}={v}' for k, v in make.items())}) with weight_scale={ws:g}, "
        f"{rule} with learning_rate={lr:g}, {epochs} epochs of batch {batch} on 50 training images"
    )
    model = build(ctx, unit, weight_scale=ws, dtype=torch.float32, device=str(ctx.device), **make)
    rule_ref = ctx.ref(rule, module=GIVEN_MODULE if rule == "sgd" else FC_MODULE)
    solver = ctx.call(
        ctx.ref("Solver", module="dlcv.solver"),
        model,
        hsmall,
        update_rule=rule_ref,
        optim_config={"learning_rate": lr},
        device=str(ctx.device),
        verbose=False,
        # the final parameters are judged here, on the training images: the Solver measures no accuracy on its way
        num_train_samples=0,
        num_val_samples=0,
        **solver_kw,
    )
    ctx.method(solver, "train", return_best_params=False)
    params = ctx.getattr(model, "params")
    ctx.expect_type(params, dict, f"the trained {unit}'s params")
    try:
        acc = accuracy(scores(cpu64(params), cpu64(small["X_train"])), small["y_train"])
    except (KeyError, RuntimeError, IndexError, TypeError, ValueError) as e:
        ctx.fail(f"{setting}: the trained {unit}'s params could not be evaluated as a {unit}'s ({e}).")
    ctx.note(f"{setting}: {acc:.0f}% training accuracy")
    # 49 of the 50 count as overfitting: with the course's own values, about one random start in a hundred leaves
    # one example out after the given epochs, and a seed's bad luck must not cost anybody the points
    need = 100.0 * (len(small["y_train"]) - 1) / len(small["y_train"])
    ctx.expect(
        acc >= need - 1e-9,
        f"{setting}: the final training accuracy is {acc:.0f}%, not 100% (the grader accepts {need:.0f}%, one "
        "example missed). Try other values of both, on a log scale (a larger weight scale, a larger learning "
        "rate, ...).",
    )
