"""
A captioning model: a recurrent network (vanilla RNN or LSTM) that writes a caption for an image, built from
the layers of rnn_layers.py and lstm_layers.py.

    image features --affine--> h0
    caption words  --word embedding--> vectors --RNN or LSTM (from h0)--> states --temporal affine--> scores

At training time the network reads the caption one word at a time and is asked, at each step, for the next
word (the loss is temporal_softmax_loss, padding steps masked out). At test time it writes a caption itself,
one word at a time, each chosen word fed back as the next input.

Conventions (the grader checks them): tensors in the dtype and on the device of the model's parameters; the
inputs unchanged; no regularisation; the gradients keyed like self.params.

Data and target: the grader sets known parameters and compares loss, every gradient and sample with its own, and
it trains your model itself (your loss, its Adam, 300 minibatches of 100) on captions of the offline digits, with
a hidden size of 32 and word vectors of 16; at least 80% of the test digits' sampled captions must then name the
right digit (the course's reference reaches about 95%).

Rules the grader enforces in this file (see `grader list --rules`):
- CaptioningRNN may not use:
  - torch.nn.RNN, torch.nn.LSTM, torch.nn.GRU, torch.nn.RNNCell, torch.nn.LSTMCell,
    torch.nn.GRUCell, torch.rnn_tanh, torch.rnn_tanh_cell, torch.rnn_relu, torch.rnn_relu_cell,
    torch.lstm, torch.lstm_cell, torch.gru, torch.gru_cell: PyTorch's recurrent layers compute the
    recurrence you are asked to write.
  - torch.nn.functional.embedding, torch.embedding, torch.nn.Embedding: it computes the word
    embedding you are asked to write (index W with x).
  - torch.nn.functional.cross_entropy, torch.nn.functional.nll_loss, torch.nn.CrossEntropyLoss,
    torch.nn.NLLLoss: it computes the softmax (cross-entropy) loss you are asked to write.
  - torch.nn.functional.softmax, torch.nn.functional.log_softmax, torch.nn.Softmax,
    torch.nn.LogSoftmax: it computes the softmax probabilities (or their logarithms) you are asked
    to compute; torch.softmax and x.softmax are the same operation.
  - torch.nn.functional.linear, torch.nn.Linear: it computes the affine layer you are asked to
    write.
- every function: no autograd (requires_grad, .backward(), torch.autograd, torch.func): gradients
  are computed by hand.
- the file may use: only the modules torch, math, random, statistics, typing, abc, enum,
  collections, functools, itertools, dataclasses, a4_rnn, dlcv (a use of another module holds back
  every function of the file; an import that nothing uses only earns a warning).

Your code goes where a TODO comment asks for it; leave the rest of the file as it is.
"""

from __future__ import annotations

import math

import torch

from a4_rnn.lstm_layers import lstm_backward, lstm_forward, lstm_step_forward
from a4_rnn.rnn_layers import (
    rnn_backward,
    rnn_forward,
    rnn_step_forward,
    temporal_affine_backward,
    temporal_affine_forward,
    temporal_softmax_loss,
    word_embedding_backward,
    word_embedding_forward,
)


class CaptioningRNN:
    """
    A recurrent captioning network. Its parameters (self.params, a dict of tensors):

    - W_proj (input_dim, H), b_proj (H,): image features to the initial hidden state h0.
    - W_embed (V, wordvec_dim): the word vectors.
    - Wx (wordvec_dim, H or 4H), Wh (H, H or 4H), b (H or 4H,): the RNN's (or the LSTM's) weights.
    - W_vocab (H, V), b_vocab (V,): hidden states to scores over the vocabulary.
    """

    def __init__(
        self,
        word_to_idx: dict[str, int],
        input_dim: int = 64,
        wordvec_dim: int = 32,
        hidden_dim: int = 64,
        cell_type: str = "rnn",
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
    ) -> None:
        """
        Inputs:
        - word_to_idx: the vocabulary, {word: index} over V words, with "<NULL>", "<START>" and "<END>".
        - input_dim: D, the size of an image's features.
        - wordvec_dim: the size of a word vector.
        - hidden_dim: H, the size of the hidden state.
        - cell_type: "rnn" or "lstm".
        - dtype, device: of every parameter.
        """
        if cell_type not in ("rnn", "lstm"):
            raise ValueError(f'cell_type must be "rnn" or "lstm", not {cell_type!r}')
        self.cell_type = cell_type
        self.dtype, self.device = dtype, device
        self.word_to_idx = word_to_idx
        self.idx_to_word = {i: w for w, i in word_to_idx.items()}
        self._null, self._start, self._end = word_to_idx["<NULL>"], word_to_idx["<START>"], word_to_idx["<END>"]
        V, H = len(word_to_idx), hidden_dim
        G = 4 * H if cell_type == "lstm" else H  # the width of the recurrent activations

        def randn(*shape: int, std: float) -> torch.Tensor:
            return std * torch.randn(*shape, dtype=dtype, device=device)

        self.params = {
            "W_proj": randn(input_dim, H, std=1 / math.sqrt(input_dim)),
            "b_proj": torch.zeros(H, dtype=dtype, device=device),
            "W_embed": randn(V, wordvec_dim, std=0.01),
            "Wx": randn(wordvec_dim, G, std=1 / math.sqrt(wordvec_dim)),
            "Wh": randn(H, G, std=1 / math.sqrt(H)),
            "b": torch.zeros(G, dtype=dtype, device=device),
            "W_vocab": randn(H, V, std=1 / math.sqrt(H)),
            "b_vocab": torch.zeros(V, dtype=dtype, device=device),
        }

    def loss(self, features: torch.Tensor, captions: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """
        The training loss and its gradients.

        Inputs:
        - features: (N, D) image features.
        - captions: (N, T) int64 captions, each "<START> words <END>" padded with "<NULL>".

        Returns a tuple of:
        - loss: 0-dim tensor, temporal_softmax_loss of the scores.
        - grads: {name: gradient} with the keys and shapes of self.params.

        The network reads captions_in = captions[:, :-1] and must predict captions_out = captions[:, 1:] (each
        word from the ones before it); mask = captions_out != <NULL>, so padding costs nothing.
        """
        p = self.params
        captions_in, captions_out = captions[:, :-1], captions[:, 1:]
        mask = captions_out != self._null
        loss, grads = None, {}
        # TODO: Forward: h0 = features W_proj + b_proj; word embedding of captions_in; rnn_forward or lstm_forward
        # (self.cell_type) from h0; temporal_affine_forward to scores; temporal_softmax_loss. Then every backward
        # pass in reverse order, filling grads.
        # BEGIN SOLUTION
        h0 = features @ p["W_proj"] + p["b_proj"]  # (N, H)
        words, embed_cache = word_embedding_forward(captions_in, p["W_embed"])  # (N, T-1, W)
        forward, backward = (rnn_forward, rnn_backward) if self.cell_type == "rnn" else (lstm_forward, lstm_backward)
        h, rnn_cache = forward(words, h0, p["Wx"], p["Wh"], p["b"])  # (N, T-1, H)
        scores, affine_cache = temporal_affine_forward(h, p["W_vocab"], p["b_vocab"])  # (N, T-1, V)
        loss, dscores = temporal_softmax_loss(scores, captions_out, mask)
        dh, grads["W_vocab"], grads["b_vocab"] = temporal_affine_backward(dscores, affine_cache)
        dwords, dh0, grads["Wx"], grads["Wh"], grads["b"] = backward(dh, rnn_cache)
        grads["W_embed"] = word_embedding_backward(dwords, embed_cache)
        grads["W_proj"] = features.t() @ dh0
        grads["b_proj"] = dh0.sum(dim=0)
        # END SOLUTION
        return loss, grads

    def sample(self, features: torch.Tensor, max_length: int = 5) -> torch.Tensor:
        """
        Write a caption for each image, greedily: start from h0 (and c0 = 0 for an LSTM) with the word <START>;
        at each step embed the last word, take one RNN (or LSTM) step, and choose the word of highest score.

        Inputs:
        - features: (N, D) image features.
        - max_length: the number of words to write.

        Returns:
        - captions: (N, max_length) int64, the chosen words in order (<START> not included). Keep going after
          <END>: whoever reads the captions stops there.

        One loop, over the max_length steps.
        """
        p = self.params
        N = features.shape[0]
        captions = torch.full((N, max_length), self._null, dtype=torch.int64, device=features.device)
        # TODO: The greedy loop, with rnn_step_forward or lstm_step_forward.
        # BEGIN SOLUTION
        h = features @ p["W_proj"] + p["b_proj"]  # (N, H)
        c = torch.zeros_like(h)
        word = torch.full((N,), self._start, dtype=torch.int64, device=features.device)
        for t in range(max_length):
            x = p["W_embed"][word]  # (N, W)
            if self.cell_type == "rnn":
                h, _ = rnn_step_forward(x, h, p["Wx"], p["Wh"], p["b"])
            else:
                h, c, _ = lstm_step_forward(x, h, c, p["Wx"], p["Wh"], p["b"])
            word = (h @ p["W_vocab"] + p["b_vocab"]).argmax(dim=1)  # (N,)
            captions[:, t] = word
        # END SOLUTION
        return captions
