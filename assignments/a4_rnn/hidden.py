"""Hidden checks for a4_rnn: the public checks' code with other shapes, seeds and dtypes."""

import torch

from grader.checks import variant

from . import checks_captioning as C
from . import checks_lstm as L
from . import checks_rnn as R

f32 = torch.float32

rnn = [
    variant(R.rnn_step_forward, "float32", N=5, D=3, H=7, dtype=f32),
    variant(R.rnn_step_backward, "one_example", N=1, D=3, H=2),
    variant(R.rnn_forward, "long", N=3, T=9, D=2, H=3),
    variant(R.rnn_backward, "long_float32", N=3, T=8, D=3, H=4, dtype=f32),
    variant(R.rnn_backward, "one_step", N=2, T=1, D=3, H=4),
    variant(R.word_embedding_forward, "large_vocab", N=3, T=6, V=40, D=5),
    variant(R.word_embedding_backward, "small_vocab", N=4, T=7, V=3, D=2),
    variant(R.temporal_affine_forward, "float32", N=4, T=2, D=3, M=6, dtype=f32),
    variant(R.temporal_affine_backward, "long", N=2, T=9, D=3, M=4),
    variant(R.temporal_softmax_loss, "sparse_mask", N=6, T=7, V=9, p=0.2),
]
lstm = [
    variant(L.lstm_step_forward, "float32", N=4, D=3, H=2, dtype=f32),
    variant(L.lstm_step_backward, "one_example", N=1, D=2, H=3),
    variant(L.lstm_forward, "long", N=3, T=8, D=3, H=2),
    variant(L.lstm_backward, "long_float32", N=2, T=7, D=3, H=4, dtype=f32),
]
captioning = [
    variant(C.captioning_loss, "rnn_other_sizes", N=5, T=7, D=3, W=6, H=4),
    variant(C.captioning_loss, "lstm_other_sizes", N=4, T=5, D=6, W=3, H=5, cell_type="lstm"),
    variant(C.captioning_sample, "lstm_long", N=3, L=9, cell_type="lstm"),
    variant(C.captioning_trains, "lstm", cell_type="lstm"),
]
