"""Grading A3 end to end: the reference scores full marks; a unit with a classic bug loses its points (and no other
unit does, not even the networks built on it, which are judged again with the course's block) with feedback that names
the bug; the naive layers may not hand their work to PyTorch, and layers may not use autograd; the given code the
checks use is the kit's."""

import pytest
import torch

from grader.course import manifest
from grader.judge.runner import grade
from tests.conftest import ROOT, copy_submission, replace_function

pytestmark = pytest.mark.assignment("a3_networks")  # make test-assignment A=a3_networks

A3 = manifest.load("a3_networks", ROOT)
POINTS = {f: pts for p in A3.parts for f, pts in p.functions.items()}
PART_POINTS = {p.name: p.points for p in A3.parts}


def failed(result):
    return {c.function for c in result.checks if not c.passed}


@pytest.mark.parametrize("hidden", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["public", "hidden"])
def test_the_reference_scores_full_marks(hidden):
    result = grade(ROOT, "a3_networks", device="cpu", hidden=hidden)
    assert [c.output for c in result.checks if not c.passed] == []
    assert result.score == pytest.approx(100) and result.max_score == pytest.approx(100)
    assert any(c.hidden for c in result.checks) == hidden
    assert result.dataset == "digits"  # the data set is recorded (no CIFAR-10 here)
    # nothing was judged with one of the course's blocks in place of the submission's
    assert not any("in place of yours" in c.output for c in result.checks)


# name -> (unit whose code is replaced, qualified name, new source, words the feedback must hold, whether every check of
# the unit fails). Each is one of the course's classic bugs (or a way around the rules).
BUGS = {
    "batchnorm_unbiased_running_var": (
        "BatchNorm",
        "BatchNorm.forward",
        """
        @staticmethod
        def forward(x, gamma, beta, bn_param):
            eps, momentum = bn_param.get("eps", 1e-5), bn_param.get("momentum", 0.9)
            D = x.shape[1]
            running_mean = bn_param.get("running_mean", torch.zeros(D, dtype=x.dtype, device=x.device))
            running_var = bn_param.get("running_var", torch.zeros(D, dtype=x.dtype, device=x.device))
            cache = None
            if bn_param["mode"] == "train":
                mean = x.mean(dim=0)
                centred = x - mean
                std = ((centred * centred).mean(dim=0) + eps).sqrt()
                x_hat = centred / std
                out = gamma * x_hat + beta
                running_mean = momentum * running_mean + (1 - momentum) * mean
                running_var = momentum * running_var + (1 - momentum) * x.var(dim=0)   # unbiased: N - 1
                cache = (x_hat, centred, std, gamma)
            else:
                out = gamma * (x - running_mean) / (running_var + eps).sqrt() + beta
            bn_param["running_mean"], bn_param["running_var"] = running_mean, running_var
            return out, cache
        """,
        "unbiased batch variance",
        False,
    ),
    "batchnorm_momentum_reversed": (
        "BatchNorm",
        "BatchNorm.forward",
        """
        @staticmethod
        def forward(x, gamma, beta, bn_param):
            eps, momentum = bn_param.get("eps", 1e-5), bn_param.get("momentum", 0.9)
            D = x.shape[1]
            running_mean = bn_param.get("running_mean", torch.zeros(D, dtype=x.dtype, device=x.device))
            running_var = bn_param.get("running_var", torch.zeros(D, dtype=x.dtype, device=x.device))
            cache = None
            if bn_param["mode"] == "train":
                mean = x.mean(dim=0)
                centred = x - mean
                var = (centred * centred).mean(dim=0)
                std = (var + eps).sqrt()
                x_hat = centred / std
                out = gamma * x_hat + beta
                running_mean = (1 - momentum) * running_mean + momentum * mean
                running_var = (1 - momentum) * running_var + momentum * var
                cache = (x_hat, centred, std, gamma)
            else:
                out = gamma * (x - running_mean) / (running_var + eps).sqrt() + beta
            bn_param["running_mean"], bn_param["running_var"] = running_mean, running_var
            return out, cache
        """,
        "momentum is reversed",
        False,
    ),
    "dropout_scaled_by_p": (
        "Dropout",
        "Dropout.forward",
        """
        @staticmethod
        def forward(x, dropout_param):
            p, mode = dropout_param["p"], dropout_param["mode"]
            if dropout_param.get("seed") is not None:
                torch.manual_seed(dropout_param["seed"])
            mask = None
            out = x
            if mode == "train":
                mask = (torch.rand_like(x) >= p).type_as(x) * p
                out = x * mask
            return out, (dropout_param, mask)
        """,
        "multiplied by p",
        False,
    ),
    "conv_padding_off_by_one": (
        "Conv",
        "Conv.forward",
        """
        @staticmethod
        def forward(x, w, b, conv_param):
            N, C, H, W = x.shape
            F, _, HH, WW = w.shape
            stride, pad = conv_param["stride"], conv_param["pad"]
            H_out = 1 + (H + 2 * pad - HH) // stride
            W_out = 1 + (W + 2 * pad - WW) // stride
            x_pad = torch.nn.functional.pad(x, (pad + 1,) * 4)
            out = x.new_zeros(N, F, H_out, W_out)
            for i in range(H_out):
                for j in range(W_out):
                    win = x_pad[:, :, i * stride:i * stride + HH, j * stride:j * stride + WW].reshape(N, -1)
                    out[:, :, i, j] = win @ w.reshape(F, -1).t() + b
            return out, (x, w, b, conv_param)
        """,
        "padding is off by one",
        False,
    ),
    "maxpool_backward_overwrites_overlaps": (
        "MaxPool",
        "MaxPool.backward",
        """
        @staticmethod
        def backward(dout, cache):
            x, pool_param = cache
            N, C, H, W = x.shape
            HP, WP, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
            dx = torch.zeros_like(x)
            for i in range(dout.shape[2]):
                for j in range(dout.shape[3]):
                    hs, ws = i * stride, j * stride
                    window = x[:, :, hs:hs + HP, ws:ws + WP].reshape(N, C, -1)
                    d = dx[:, :, hs:hs + HP, ws:ws + WP].reshape(N, C, -1).clone()
                    d.scatter_(2, window.argmax(dim=2, keepdim=True), dout[:, :, i, j, None])   # = instead of +=
                    dx[:, :, hs:hs + HP, ws:ws + WP] = d.reshape(N, C, HP, WP)
            return dx
        """,
        "ADDS to what is there",
        False,
    ),
    "adam_without_bias_correction": (
        "adam",
        "adam",
        """
        def adam(w, dw, config=None):
            config = {} if config is None else config
            for key, value in (("learning_rate", 1e-3), ("beta1", 0.9), ("beta2", 0.999), ("epsilon", 1e-8), ("t", 0)):
                config.setdefault(key, value)
            config.setdefault("m", torch.zeros_like(w))
            config.setdefault("v", torch.zeros_like(w))
            config["t"] += 1
            config["m"] = config["beta1"] * config["m"] + (1 - config["beta1"]) * dw
            config["v"] = config["beta2"] * config["v"] + (1 - config["beta2"]) * dw * dw
            return w - config["learning_rate"] * config["m"] / (config["v"].sqrt() + config["epsilon"]), config
        """,
        "no bias correction",
        True,
    ),
    "rmsprop_without_square_root": (
        "rmsprop",
        "rmsprop",
        """
        def rmsprop(w, dw, config=None):
            config = {} if config is None else config
            for key, value in (("learning_rate", 1e-2), ("decay_rate", 0.99), ("epsilon", 1e-8)):
                config.setdefault(key, value)
            cache = config.get("cache", torch.zeros_like(w))
            cache = config["decay_rate"] * cache + (1 - config["decay_rate"]) * dw * dw
            config["cache"] = cache
            return w - config["learning_rate"] * dw / (cache + config["epsilon"]), config
        """,
        "the square root is missing",
        True,
    ),
    "linear_backward_swaps_dx_and_dw": (
        "Linear",
        "Linear.backward",
        """
        @staticmethod
        def backward(dout, cache):
            x, w, b = cache
            return x.reshape(x.shape[0], -1).t() @ dout, (dout @ w.t()).reshape(x.shape), dout.sum(dim=0)
        """,
        "wrong order",
        False,
    ),
    "two_layer_net_without_regulariser": (
        "TwoLayerNet",
        "TwoLayerNet.loss",
        """
        def loss(self, X, y=None):
            hidden, cache1 = Linear_ReLU.forward(X, self.params["W1"], self.params["b1"])
            scores, cache2 = Linear.forward(hidden, self.params["W2"], self.params["b2"])
            if y is None:
                return scores
            grads = {}
            loss, dscores = softmax_loss(scores, y)
            dhidden, grads["W2"], grads["b2"] = Linear.backward(dscores, cache2)
            _, grads["W1"], grads["b1"] = Linear_ReLU.backward(dhidden, cache1)
            return loss, grads
        """,
        "regulariser is missing",
        False,
    ),
    "conv_calls_conv2d": (
        "Conv",
        "Conv.forward",
        """
        @staticmethod
        def forward(x, w, b, conv_param):
            out = torch.nn.functional.conv2d(x, w, b, stride=conv_param["stride"], padding=conv_param["pad"])
            return out, (x, w, b, conv_param)
        """,
        "Conv uses torch.nn.functional.conv2d",
        True,
    ),
    "conv_delegates_to_FastConv": (
        "Conv",
        "Conv.forward",
        """
        @staticmethod
        def forward(x, w, b, conv_param):
            out, _ = FastConv.forward(x, w, b, conv_param)
            return out, (x, w, b, conv_param)
        """,
        "Conv uses FastConv",
        True,
    ),
    "maxpool_calls_max_pool2d_behind_getattr": (
        "MaxPool",
        "MaxPool.forward",
        """
        @staticmethod
        def forward(x, pool_param):
            pool = getattr(torch.nn.functional, "max_pool2d")
            out = pool(x, (pool_param["pool_height"], pool_param["pool_width"]), stride=pool_param["stride"])
            return out, (x, pool_param)
        """,
        "called torch.nn.functional.max_pool2d",
        False,
    ),
    "kaiming_fan_out": (
        "kaiming_initializer",
        "kaiming_initializer",
        """
        def kaiming_initializer(Din, Dout, K=None, relu=True, device="cpu", dtype=torch.float32):
            fan = Dout if K is None else Dout * K * K
            shape = (Din, Dout) if K is None else (Dout, Din, K, K)
            return math.sqrt((2.0 if relu else 1.0) / fan) * torch.randn(*shape, dtype=dtype, device=device)
        """,
        "the fan-in is Dout",
        True,
    ),
    "relu_backward_uses_autograd": (
        "ReLU",
        "ReLU.backward",
        """
        @staticmethod
        def backward(dout, cache):
            x = cache.detach().requires_grad_(True)
            with torch.enable_grad():
                out = x.clamp(min=0)
            (dx,) = torch.autograd.grad(out, x, dout)
            return dx
        """,
        "may not use torch.Tensor.requires_grad_, torch.autograd",
        True,
    ),
}

# Several bugs in units that do not use each other go into one submission (a grading run of a part is the slow
# step); a bug in a layer the networks use gets a submission of its own.
SUBMISSIONS = {
    "fc_dropout_adam_rmsprop_two_layer_net": [
        "dropout_scaled_by_p",
        "adam_without_bias_correction",
        "rmsprop_without_square_root",
        "two_layer_net_without_regulariser",
    ],
    "fc_linear": ["linear_backward_swaps_dx_and_dw"],
    "fc_relu_autograd": ["relu_backward_uses_autograd"],
    "conv_batchnorm_conv_maxpool": [
        "batchnorm_unbiased_running_var",
        "conv_padding_off_by_one",
        "maxpool_backward_overwrites_overlaps",
    ],
    "conv_cheats_and_momentum": [
        "batchnorm_momentum_reversed",
        "conv_delegates_to_FastConv",
        "maxpool_calls_max_pool2d_behind_getattr",
    ],
    "conv_conv2d_kaiming": ["conv_calls_conv2d", "kaiming_fan_out"],
}


@pytest.mark.parametrize("name", sorted(SUBMISSIONS))
def test_each_wrong_unit_loses_its_points_and_no_other(tmp_path, name):
    bugs = [BUGS[b] for b in SUBMISSIONS[name]]
    sub = copy_submission(tmp_path, packages=("a3_networks",))
    for unit, qualname, source, _, _ in bugs:
        replace_function(sub / A3.part_of(unit).file, qualname, source)
    parts = sorted({A3.part_of(unit).name for unit, *_ in bugs})
    result = grade(sub, "a3_networks", device="cpu", parts=parts)
    assert failed(result) == {unit for unit, *_ in bugs}, [c.output for c in result.checks if not c.passed]
    for unit, _, _, words, every_check in bugs:
        mine = [c for c in result.checks if c.function == unit]
        lost = sum(c.max_score for c in mine if not c.passed)
        assert 0 < lost <= POINTS[unit] + 1e-9
        if every_check:
            assert lost == pytest.approx(POINTS[unit])
        assert any(words in c.output for c in mine if not c.passed), [c.output for c in mine]
    lost = sum(c.max_score for c in result.checks if not c.passed)
    assert result.score == pytest.approx(sum(PART_POINTS[p] for p in parts) - lost)
    if name == "fc_relu_autograd":  # the networks built on ReLU keep their points, and say why
        nets = [c for c in result.checks if c.function in ("TwoLayerNet", "FullyConnectedNet")]
        assert nets and all(c.passed for c in nets) and any("course's own ReLU" in c.output for c in nets)
    if name == "conv_conv2d_kaiming":  # DeepConvNet's Kaiming initialisation is judged with the course's initialiser
        deep = [c for c in result.checks if c.function == "DeepConvNet"]
        assert any("course's own kaiming_initializer" in c.output for c in deep)


# ---- a composite keeps its points for a wrong block only where it is right with the course's block ----

LEAKY_RELU = """
    class ReLU:                # a leaky ReLU, forward and backward: wrong, consistently
        @staticmethod
        def forward(x):
            return x.clamp(min=0) + 0.01 * x.clamp(max=0), x

        @staticmethod
        def backward(dout, cache):
            return dout * ((cache > 0).to(dout.dtype) + 0.01 * (cache <= 0).to(dout.dtype))
    """
NETS = ("TwoLayerNet", "FullyConnectedNet", "ThreeLayerConvNet", "DeepConvNet")


def loss_checks(result, unit):
    return [c for c in result.checks if c.function == unit and "loss" in c.id]


def test_a_wrong_relu_excuses_no_net_whose_own_loss_is_wrong(tmp_path):
    sub = copy_submission(tmp_path, packages=("a3_networks",))
    fc, conv = sub / A3.part_of("ReLU").file, sub / A3.part_of("DeepConvNet").file
    replace_function(fc, "ReLU", LEAKY_RELU)
    for path, net in ((fc, "FullyConnectedNet"), (conv, "ThreeLayerConvNet")):  # raise in their own lines
        replace_function(
            path,
            f"{net}.loss",
            """
            def loss(self, X, y=None):
                raise RuntimeError("the loss is not written yet")
            """,
        )
    for path, net in ((fc, "TwoLayerNet"), (conv, "DeepConvNet")):  # a wrong value: 1.5 x the loss
        with path.open("a") as f:
            f.write(
                f"\n\n_{net}_loss = {net}.loss\n\n\ndef _scaled_loss_{net}(self, X, y=None):\n"
                f"    out = _{net}_loss(self, X, y)\n    return out if y is None else (out[0] * 1.5, out[1])\n\n\n"
                f"{net}.loss = _scaled_loss_{net}\n"
            )
    result = grade(sub, "a3_networks", device="cpu")
    assert failed(result) == {"ReLU", *NETS}, [c.output for c in result.checks if not c.passed]
    for net in NETS:
        mine = loss_checks(result, net)
        assert mine and not any(c.passed for c in mine), net
        # judged again with the course's ReLU, the problem stays the network's own
        assert all(f"this problem is {net}'s own" in c.output for c in mine), [c.output for c in mine]
    assert any("the loss is not written yet" in c.output for c in loss_checks(result, "FullyConnectedNet"))
    lost = sum(c.max_score for c in result.checks if not c.passed)
    assert lost == pytest.approx(POINTS["ReLU"] + sum(c.max_score for n in NETS for c in loss_checks(result, n)))
    assert result.score == pytest.approx(100 - lost) and result.score < 81


def test_a_wrong_relu_still_excuses_correct_nets(tmp_path):
    sub = copy_submission(tmp_path, packages=("a3_networks",))
    replace_function(sub / A3.part_of("ReLU").file, "ReLU", LEAKY_RELU)
    result = grade(sub, "a3_networks", device="cpu")
    assert failed(result) == {"ReLU"}, [c.output for c in result.checks if not c.passed]
    assert result.score == pytest.approx(100 - POINTS["ReLU"])
    for net in NETS:  # the nets' loss checks differ from the oracle, but are right with the course's ReLU
        assert any(
            "course's own ReLU" in c.output and f"with it, {net} is right" in c.output for c in loss_checks(result, net)
        ), net


# ---- training is the judge's: the kit's own Solver, the judge's caps, only the model and hyperparameters taken ----


def test_a_solver_subclass_cannot_train_beyond_the_judges_caps(tmp_path):
    sub = copy_submission(tmp_path, packages=("a3_networks",))
    fc = sub / A3.part_of("create_solver_instance").file
    text = fc.read_text().replace("num_epochs=20,", "num_epochs=1,")  # asks for one epoch ...
    fc.write_text(
        text
        + """

class Solver(Solver):            # ... and trains 20 anyway, past any cap or time limit it is given
    def train(self, *args, **kwargs):
        self.num_epochs = 20
        super().train()
"""
    )
    result = grade(sub, "a3_networks", device="cpu", parts=["fully_connected"])
    mine = [c for c in result.checks if c.function == "create_solver_instance"]
    assert len(mine) == 1 and not mine[0].passed, mine[0].output
    assert "trained by the grader's Solver" in mine[0].output and "batch 100, 1 epoch," in mine[0].output
    assert "below the target" in mine[0].output
    assert failed(result) == {"create_solver_instance"}


@pytest.mark.slow
def test_a_conv_solver_that_barely_trains_misses_the_digits_target(tmp_path):
    """The digits target (below the reference's worst run, see the manifest) still tells a Solver that learns from
    one that hardly does: the reference's DeepConvNet with a learning rate a thousand times too small."""
    sub = copy_submission(tmp_path, packages=("a3_networks",))
    conv = sub / A3.part_of("create_convolutional_solver_instance").file
    text = conv.read_text()
    assert 'optim_config={"learning_rate": 2e-3}' in text
    conv.write_text(text.replace('optim_config={"learning_rate": 2e-3}', 'optim_config={"learning_rate": 2e-6}'))
    result = grade(sub, "a3_networks", device="cpu", parts=["convolutional"])
    mine = [c for c in result.checks if c.function == "create_convolutional_solver_instance"]
    target = A3.targets["digits"]["conv_solver_accuracy"]
    assert len(mine) == 1 and not mine[0].passed and f"below the target {target:g}%" in mine[0].output, mine[0].output
    assert failed(result) == {"create_convolutional_solver_instance"}


def test_a_solver_that_asks_for_more_epochs_than_the_cap_is_told_more_does_not_help(tmp_path):
    sub = copy_submission(tmp_path, packages=("a3_networks",))
    fc = sub / A3.part_of("create_solver_instance").file
    text = fc.read_text()
    text = text.replace("num_epochs=20,", "num_epochs=100,").replace(
        '{"learning_rate": 2e-1}', '{"learning_rate": 1e-9}'
    )
    fc.write_text(text)  # 100 epochs asked (the cap on the offline set is 20), a learning rate that learns nothing
    result = grade(sub, "a3_networks", device="cpu", parts=["fully_connected"])
    mine = [c for c in result.checks if c.function == "create_solver_instance"]
    assert len(mine) == 1 and not mine[0].passed, mine[0].output
    out = mine[0].output
    assert "20 of its 100 epochs" in out and "the grader trains at most 20 epochs here" in out, out
    assert "asking for more does not change this result" in out and "number of epochs" not in out, out


# ---- given code is the kit's; a crash in a composite's own lines is its own ----

BROKEN_SGD = """

def sgd(w, dw, config=None):     # a broken copy of the given sgd: the checks train with the kit's own
    return w, config or {}
"""


def test_the_checks_train_with_the_kits_sgd_not_a_copy_in_the_submission(tmp_path):
    sub = copy_submission(tmp_path, packages=("a3_networks",))
    fc = sub / A3.part_of("create_solver_instance").file
    fc.write_text(fc.read_text() + BROKEN_SGD)
    result = grade(sub, "a3_networks", device="cpu", parts=["fully_connected"])
    assert failed(result) == set(), [c.output for c in result.checks if not c.passed]
    assert [c for c in result.checks if c.function.startswith("get_")]  # the overfitting checks train with sgd
    assert not any("in place of yours" in c.output for c in result.checks)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA (the submission asks for it)")
def test_a_crash_in_a_composites_own_lines_is_not_excused_by_a_broken_block(tmp_path):
    sub = copy_submission(tmp_path, packages=("a3_networks",))
    fc = sub / A3.part_of("ReLU").file
    replace_function(fc, "ReLU", LEAKY_RELU)  # a broken block of every network
    fc.write_text(
        fc.read_text().replace("reg=1e-4, dtype=dtype, device=device)", 'reg=1e-4, dtype=dtype, device="cuda")')
    )
    result = grade(sub, "a3_networks", device="cpu", parts=["fully_connected"])
    assert failed(result) == {"ReLU", "create_solver_instance"}, [c.output for c in result.checks if not c.passed]
    (solver,) = [c for c in result.checks if c.function == "create_solver_instance"]
    assert "create_solver_instance raised RuntimeError" in solver.output  # no CUDA here
    assert "this problem is create_solver_instance's own" in solver.output


# ---- the course's 0.5 regulariser: right when the loss and every gradient use it ----------------


def test_the_courses_half_regulariser_is_accepted_only_when_loss_and_gradients_agree(tmp_path):
    sub = copy_submission(tmp_path, packages=("a3_networks",))
    path = sub / "a3_networks" / "fully_connected_networks.py"
    text = path.read_text()
    fc = (  # FullyConnectedNet: 0.5 * reg * sum(W * W) with gradient reg * W, consistently
        "            loss = loss + self.reg * (W * W).sum()\n"
        '            grads[f"W{i}"] = grads[f"W{i}"] + 2 * self.reg * W\n'
    )
    two = "        loss = loss + self.reg * ((W1 * W1).sum() + (W2 * W2).sum())\n"  # TwoLayerNet: 0.5 in the loss only
    assert text.count(fc) == 1 and text.count(two) == 1
    text = text.replace(fc, fc.replace("self.reg * (W", "0.5 * self.reg * (W").replace("2 * self.reg", "self.reg"))
    path.write_text(text.replace(two, two.replace("self.reg *", "0.5 * self.reg *")))
    result = grade(sub, "a3_networks", device="cpu", parts=["fully_connected"])
    assert failed(result) == {"TwoLayerNet"}, [c.output for c in result.checks if not c.passed]
    fc_checks = [c for c in result.checks if c.function == "FullyConnectedNet"]
    assert any("0.5 * reg * sum(W * W), with gradients reg * W" in c.output for c in fc_checks)
    two_failed = [c.output for c in result.checks if c.function == "TwoLayerNet" and not c.passed]
    assert any("factor 1/2 in the loss but not in the gradients" in out for out in two_failed), two_failed
    assert not any("accepted" in out for out in two_failed)


def test_a_solver_handed_over_trained_already_fails(tmp_path):
    """The grader trains the model itself, with the student's hyperparameters: a model trained in the student's own
    function is refused (its accuracy before the grader's training gives it away)."""
    sub = copy_submission(tmp_path, packages=("a3_networks",))
    path = sub / "a3_networks" / "fully_connected_networks.py"
    text = path.read_text()
    end = "        verbose=False,\n    )\n    # END SOLUTION\n    return solver\n"
    assert text.count(end) == 1
    path.write_text(text.replace(end, end.replace("    return solver\n", "    solver.train()\n    return solver\n")))
    result = grade(sub, "a3_networks", device="cpu", parts=["fully_connected"])
    assert failed(result) == {"create_solver_instance"}
    out = next(c.output for c in result.checks if c.function == "create_solver_instance")
    assert "is trained already" in out and "on held-out data before training" in out, out


def test_overfitting_values_that_do_not_overfit_lose_their_points(tmp_path):
    """The overfit checks accept 49 of the 50 images (a random start's bad luck), never values that do not train."""
    sub = copy_submission(tmp_path, packages=("a3_networks",))
    replace_function(
        sub / "a3_networks" / "fully_connected_networks.py",
        "get_three_layer_network_params",
        "def get_three_layer_network_params():\n    return 1e-4, 1e-5\n",
    )
    result = grade(sub, "a3_networks", device="cpu", parts=["fully_connected"])
    assert failed(result) == {"get_three_layer_network_params"}
    out = next(c.output for c in result.checks if c.function == "get_three_layer_network_params")
    assert "not 100% (the grader accepts 98%, one example missed)" in out, out
