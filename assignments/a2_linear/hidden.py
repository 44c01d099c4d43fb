"""Hidden checks for A2: the public checks' code with other seeds, shapes, dtypes and edge cases."""

import torch

from grader.checks import variant

from .checks import (
    find_best_net,
    forward_backward,
    forward_backward_toy,
    forward_pass,
    nn_predict,
    predict,
    sample_batch,
    sample_batch_many,
    softmax_naive,
    softmax_vectorized,
    softmax_vectorized_speed,
    svm_naive,
    svm_vectorized,
    svm_vectorized_speed,
    test_one_param_set,
    train_net,
    train_steps,
)

f32, f64 = torch.float32, torch.float64

# (N, D, C, reg, dtype, options): one example, two classes, square W (a transposed dW has the right shape),
# a strong regulariser, float32 with it, and huge scores again.
EDGE_CASES = (
    (1, 4, 3, 0.2, f64, {}),
    (15, 6, 2, 0.0, f64, {}),
    (9, 5, 5, 0.3, f64, {}),
    (20, 8, 7, 1.0, f64, {"w_scale": 0.1}),
    (25, 10, 10, 0.5, f32, {}),
    (7, 6, 5, 0.0, f32, {"offset": 300.0}),
    (5, 4, 6, 0.0, f64, {"offset": -2e4}),
)
KINKS = ((14, 5, 4, 0.0, f64, {"integer": True}), (11, 6, 5, 0.05, f32, {"integer": True}))

linear = [
    variant(svm_naive, "edge_cases", cases=EDGE_CASES),
    variant(svm_naive, "kinks", cases=KINKS),
    variant(svm_vectorized, "edge_cases", cases=EDGE_CASES),
    variant(
        svm_vectorized,
        "kinks_large",
        cases=((200, 40, 10, 0.0, f64, {"integer": True}), (120, 30, 6, 0.01, f32, {"integer": True})),
    ),
    variant(softmax_naive, "edge_cases", cases=EDGE_CASES),
    variant(softmax_vectorized, "edge_cases", cases=EDGE_CASES),
    variant(softmax_vectorized, "large", cases=((300, 64, 10, 1e-3, f64, {}), (256, 100, 10, 1e-3, f32, {}))),
    variant(svm_vectorized_speed, "float64", dtype=f64, N=1500, D=300),
    variant(softmax_vectorized_speed, "float64", dtype=f64, N=1500, D=300),
    variant(sample_batch, "all_rows_float64", N=100, D=2, num_train=100, batch_size=100, dtype=f64),
    variant(sample_batch_many, "five_rows", N=12, D=4, num_train=5, batch_size=500, dtype=f32),
    variant(
        train_steps,
        "float32_batch_larger_than_n",
        N=10,
        D=5,
        C=3,
        batch_size=25,
        num_iters=6,
        lr=0.1,
        reg=0.1,
        dtype=f32,
        init=(12, 3, (1, 5), torch.float64),
    ),
    variant(predict, "float64_two_classes", N=40, D=3, C=2, dtype=f64),
    variant(predict, "one_example_many_classes", N=1, D=6, C=12, dtype=f32),
    variant(test_one_param_set, "softmax", cls="Softmax", lr=0.1, reg=1e-3),
]

two_layer = [
    variant(forward_pass, "shapes", cases=((1, 3, 1, 2, f64), (15, 4, 11, 6, f32))),
    variant(forward_backward_toy, "no_reg", reg=0.0),
    variant(forward_backward, "shapes", cases=((16, 10, 12, 5, 0.05, f32), (5, 3, 20, 6, 0.0, f64))),
    variant(
        train_net,
        "batch_larger_than_n",
        N=4,
        batch_size=10,
        num_iters=5,
        lr=0.3,
        decay=0.8,
        reg=0.05,
        dtypes=(f64,),
        toy=(0.1, 1.0, 1e-6, 200, 10),
    ),
    variant(
        train_net, "three_per_epoch", N=10, batch_size=3, num_iters=10, lr=0.2, decay=0.9, reg=0.0, dtypes=(f32, f64)
    ),
    variant(nn_predict, "float64_two_classes", N=15, D=4, H=6, C=2, dtype=f64),
    variant(find_best_net, "two_hidden_sizes", grid=([0.03, 0.3], [24, 8], [1e-3], [0.9])),
]
