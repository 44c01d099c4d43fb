"""Given code: a small captioning data set made offline from the handwritten digits (dlcv's offline stand-in for
CIFAR-10). Each image gets a caption that says which digit it shows, in one of two phrasings of different
lengths, so that sequences need padding:

    digits 0..4:  <START> a three <END> <NULL>
    digits 5..9:  <START> the digit seven <END>

Features are the 8x8 digit images (the mean of each 4x4 block of the 32x32 image), scaled to 0..1 and centred
by the training mean: 64 numbers per image."""

from __future__ import annotations

import torch

import dlcv.data

NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TOKENS = ("<NULL>", "<START>", "<END>")
WORDS = (*TOKENS, "a", "the", "digit", *NUMBERS)
MAX_LENGTH = 5  # words after <START>, <END> included


def caption_of(label: int, word_to_idx: dict[str, int]) -> list[int]:
    """The caption of a digit as word indices, <START> first, padded with <NULL> to 1 + MAX_LENGTH."""
    words = ["a", NUMBERS[label]] if label < 5 else ["the", "digit", NUMBERS[label]]
    words = ["<START>", *words, "<END>"]
    words += ["<NULL>"] * (1 + MAX_LENGTH - len(words))
    return [word_to_idx[w] for w in words]


def load_digit_captions(dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu") -> dict:
    """
    The digit captioning data set.

    Returns a dict with:
    - train_features: (1500, 64) and test_features: (297, 64), in dtype on device.
    - train_captions: (1500, 6) and test_captions: (297, 6) int64 word indices (<START> first, <NULL> padding).
    - train_labels, test_labels: (N,) int64 digits.
    - word_to_idx: {word: index}; idx_to_word: list of the words by index (<NULL> is 0).
    """
    x_train, y_train, x_test, y_test = dlcv.data.load_digits_as_cifar()
    word_to_idx = {w: i for i, w in enumerate(WORDS)}

    def features(x: torch.Tensor) -> torch.Tensor:
        small = x[:, 0].to(torch.float64).reshape(-1, 8, 4, 8, 4).mean(dim=(2, 4)) / 255.0  # (N, 8, 8)
        return small.reshape(-1, 64)  # (N, 64)

    f_train, f_test = features(x_train), features(x_test)
    mean = f_train.mean(dim=0)

    def captions(y: torch.Tensor) -> torch.Tensor:
        return torch.tensor([caption_of(int(v), word_to_idx) for v in y], dtype=torch.int64, device=device)

    return {
        "train_features": (f_train - mean).to(device=device, dtype=dtype),
        "test_features": (f_test - mean).to(device=device, dtype=dtype),
        "train_captions": captions(y_train),
        "test_captions": captions(y_test),
        "train_labels": y_train.to(device),
        "test_labels": y_test.to(device),
        "word_to_idx": word_to_idx,
        "idx_to_word": list(WORDS),
    }


def decode_captions(captions: torch.Tensor, idx_to_word: list[str]) -> list[str]:
    """Word indices (N, T) to strings, stopping at <END> and leaving out <NULL> and <START>."""
    out = []
    for row in captions.tolist():
        words = []
        for i in row:
            word = idx_to_word[i]
            if word == "<END>":
                break
            if word not in ("<NULL>", "<START>"):
                words.append(word)
        out.append(" ".join(words))
    return out
