"""A3's oracles (assignments/a3_networks/oracles.py), which the grader puts in place of a student's broken building
block, agree with the reference solution: same outputs, gradients, caches used consistently, running statistics,
dropout masks for a seed, update-rule states, and networks' losses and gradients. Also: the given code the student
files use is the kit's (layer_utils.py), not a copy in the student files."""

import ast
import importlib.util

import pytest
import torch

import dlcv
from a3_networks import convolutional_networks as cn
from a3_networks import fully_connected_networks as fc
from a3_networks import layer_utils
from tests.conftest import ROOT

pytestmark = pytest.mark.assignment("a3_networks")  # make test-assignment A=a3_networks

spec = importlib.util.spec_from_file_location("a3_oracles", ROOT / "assignments" / "a3_networks" / "oracles.py")
O = importlib.util.module_from_spec(spec)
spec.loader.exec_module(O)

f64 = torch.float64


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=f64)


def close(a, b, tol=1e-10):
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(close(x, y, tol) for x, y in zip(a, b))
    return a.shape == b.shape and a.dtype == b.dtype and dlcv.rel_error(a, b) < tol


LAYERS = [
    ("Linear", fc.Linear, lambda: [rand(3, 2, 4), rand(8, 5, seed=1), rand(5, seed=2)], ()),
    ("ReLU", fc.ReLU, lambda: [rand(4, 5)], ()),
    (
        "Conv",
        cn.Conv,
        lambda: [rand(2, 3, 7, 6), rand(4, 3, 3, 3, seed=1), rand(4, seed=2)],
        ({"stride": 2, "pad": 1},),
    ),
    ("MaxPool", cn.MaxPool, lambda: [rand(2, 3, 7, 6)], ({"pool_height": 3, "pool_width": 2, "stride": 2},)),
    ("BatchNorm", cn.BatchNorm, lambda: [rand(9, 4), 1 + rand(4, seed=1), rand(4, seed=2)], ({"mode": "train"},)),
    (
        "SpatialBatchNorm",
        cn.SpatialBatchNorm,
        lambda: [rand(2, 3, 4, 5), 1 + rand(3, seed=1), rand(3, seed=2)],
        ({"mode": "train"},),
    ),
]


@pytest.mark.parametrize("name, reference, inputs, params", LAYERS, ids=[layer[0] for layer in LAYERS])
def test_each_layer_oracle_matches_the_reference(name, reference, inputs, params):
    oracle = O.ORACLES[name]
    ref_params = [dict(p) if isinstance(p, dict) else p for p in params]
    out, cache = oracle.forward(*inputs(), *params)
    ref_out, ref_cache = reference.forward(*inputs(), *ref_params)
    assert close(out, ref_out)
    if name in ("BatchNorm", "SpatialBatchNorm"):
        assert close(
            [params[0]["running_mean"], params[0]["running_var"]],
            [ref_params[0]["running_mean"], ref_params[0]["running_var"]],
        )
    dout = rand(*out.shape, seed=7)
    got, want = oracle.backward(dout, cache), reference.backward(dout, ref_cache)
    assert close(got, want, 1e-9)
    if name == "BatchNorm":
        assert close(oracle.backward_alt(dout, cache), want, 1e-9)


def test_the_oracle_batchnorm_in_test_mode_uses_the_running_statistics():
    x, gamma, beta = rand(6, 3), 1 + rand(3, seed=1), rand(3, seed=2)
    param = {"mode": "test", "running_mean": rand(3, seed=3), "running_var": rand(3, seed=4).abs() + 0.5}
    assert close(
        O.BatchNorm.forward(x, gamma, beta, dict(param))[0], cn.BatchNorm.forward(x, gamma, beta, dict(param))[0]
    )


def test_the_oracle_dropout_draws_the_references_mask_for_a_seed():
    x = 1 + rand(20, 30).abs()
    for mode in ("train", "test"):
        param = {"mode": mode, "p": 0.3, "seed": 5}
        out, cache = O.Dropout.forward(x, param)
        ref_out, ref_cache = fc.Dropout.forward(x, dict(param))
        assert torch.equal(out, ref_out)
        assert torch.equal(O.Dropout.backward(x, cache), fc.Dropout.backward(x, ref_cache))


@pytest.mark.parametrize("rule", ["sgd_momentum", "rmsprop", "adam"])
def test_each_update_rule_oracle_matches_the_reference_over_several_steps(rule):
    w_o = w_r = rand(4, 3)
    c_o, c_r = None, None
    for step in range(4):
        dw = rand(4, 3, seed=10 + step)
        w_o, c_o = O.ORACLES[rule](w_o, dw, c_o)
        w_r, c_r = getattr(fc, rule)(w_r, dw, c_r)
        assert close(w_o, w_r)
        assert c_o.keys() == c_r.keys()
        assert all(close(c_o[k], c_r[k]) if isinstance(c_r[k], torch.Tensor) else c_o[k] == c_r[k] for k in c_r)


def test_the_kaiming_oracle_draws_with_the_references_scale():
    torch.manual_seed(0)
    a = O.kaiming_initializer(64, 32, K=3, relu=True, dtype=f64)
    torch.manual_seed(0)
    assert close(a, cn.kaiming_initializer(64, 32, K=3, relu=True, dtype=f64))
    torch.manual_seed(0)
    b = O.kaiming_initializer(300, 10, relu=False)
    torch.manual_seed(0)
    assert close(b, cn.kaiming_initializer(300, 10, relu=False))


NETS = [
    (
        "TwoLayerNet",
        fc.TwoLayerNet,
        {"input_dim": 12, "hidden_dim": 7, "num_classes": 4, "reg": 0.1},
        lambda: rand(5, 3, 2, 2),
    ),
    (
        "FullyConnectedNet",
        fc.FullyConnectedNet,
        {"hidden_dims": [6, 5], "input_dim": 12, "num_classes": 4, "reg": 0.1, "dropout": 0.3, "seed": 3},
        lambda: rand(5, 12),
    ),
    (
        "ThreeLayerConvNet",
        cn.ThreeLayerConvNet,
        {"input_dims": (3, 8, 8), "num_filters": 4, "filter_size": 3, "hidden_dim": 6, "num_classes": 4, "reg": 0.1},
        lambda: rand(5, 3, 8, 8),
    ),
    (
        "DeepConvNet",
        cn.DeepConvNet,
        {
            "input_dims": (3, 8, 8),
            "num_filters": [3, 4],
            "max_pools": [0],
            "batchnorm": True,
            "num_classes": 4,
            "reg": 0.1,
        },
        lambda: rand(5, 3, 8, 8),
    ),
]


@pytest.mark.parametrize("name, reference, kwargs, inputs", NETS, ids=[n[0] for n in NETS])
def test_each_network_oracle_matches_the_reference(name, reference, kwargs, inputs):
    torch.manual_seed(0)
    oracle = O.ORACLES[name](weight_scale=0.3, dtype=f64, **kwargs)
    torch.manual_seed(0)
    ref = reference(weight_scale=0.3, dtype=f64, **kwargs)
    assert oracle.params.keys() == ref.params.keys()
    assert all(close(oracle.params[k], ref.params[k]) for k in ref.params)
    X, y = inputs(), torch.tensor([0, 3, 1, 2, 1])
    loss, grads = oracle.loss(X, y)
    ref_loss, ref_grads = ref.loss(X, y)
    assert close(loss, ref_loss)
    for k in ref_grads:  # a bias before a batch normalisation has a zero gradient: compare absolutely
        assert dlcv.rel_error(grads[k], ref_grads[k], eps=1e-3) < 1e-9, k
    assert close(oracle.loss(X), ref.loss(X), 1e-9)
    for mine, theirs in zip(getattr(oracle, "bn_params", []), getattr(ref, "bn_params", [])):
        assert close([mine["running_mean"], mine["running_var"]], [theirs["running_mean"], theirs["running_var"]])


def test_the_student_files_hold_no_given_code_and_reexport_the_kits():
    for path in ("a3_networks/fully_connected_networks.py", "a3_networks/convolutional_networks.py"):
        defined = {
            n.name for n in ast.parse((ROOT / path).read_text()).body if isinstance(n, (ast.FunctionDef, ast.ClassDef))
        }
        assert not defined & {
            "sgd",
            "softmax_loss",
            "Linear_ReLU",
            "FastConv",
            "FastMaxPool",
            "ConvVectorized",
            "Conv_ReLU",
            "Conv_ReLU_Pool",
            "Linear_BatchNorm_ReLU",
            "Conv_BatchNorm_ReLU",
            "Conv_BatchNorm_ReLU_Pool",
        }, path
    assert fc.sgd is layer_utils.sgd and fc.softmax_loss is layer_utils.softmax_loss
    assert fc.Linear_ReLU is layer_utils.Linear_ReLU is cn.Linear_ReLU
