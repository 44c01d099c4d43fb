"""A1 warm-up in other correct idioms: library helpers (math.prod, F.one_hot, einsum, torch.where), views returned
where the contract allows them, float64 internals that return the input's dtype, a loop kept in a helper where
the lesson asks for one, and device moves spelled with a torch.device."""

import math

import torch
import torch.nn.functional as F


def create_sample_tensor():
    return torch.tensor([[0, 10], [100, 0], [0, 0]], dtype=torch.float32)


def mutate_tensor(x, indices, values):
    for k in range(len(indices)):
        i, j = indices[k]
        x[i][j] = values[k]  # chained indexing writes through the view of row i
    return x


def count_tensor_elements(x):
    return math.prod(x.shape)


def create_tensor_of_pi(M, N):
    return torch.ones(M, N) * 3.14


def multiples_of_ten(start, stop):
    x = torch.arange(start, stop + 1, dtype=torch.float64)
    return x[x % 10 == 0]


def slice_indexing_practice(x):
    return x[-1], x[:, 2].unsqueeze(1), x[0:2, 0:3], x[0::2, 1::2]


def slice_assignment_practice(x):
    x[0:2, 0:1] = 0
    x[0:2, 1:2] = 1
    x[0:2, 2:6] = 2
    x[2:4, 0:3:2] = 3
    x[2:4, 1:4:2] = 4
    x[2:4, 4:6] = 5
    return x


def shuffle_cols(x):
    return x.index_select(1, torch.tensor([0, 0, 2, 1], device=x.device))


def reverse_rows(x):
    return x[torch.arange(x.shape[0] - 1, -1, -1, device=x.device)]


def take_one_elem_per_col(x):
    return torch.stack([x[1, 0], x[0, 1], x[3, 2]])


def count_negative_entries(x):
    return int(torch.sum(x < 0))


def make_one_hot(labels):
    return F.one_hot(torch.as_tensor(labels)).to(torch.float32)


def reshape_practice(x):
    return x.reshape(2, 3, 4).permute(1, 0, 2).reshape(3, -1)


def zero_row_min(x):
    # every occurrence of a repeated minimum is zeroed: the contract allows it
    return torch.where(x == x.min(dim=1, keepdim=True).values, torch.zeros_like(x), x)


def _one_by_one(x, y):
    return torch.stack([x[i] @ y[i] for i in range(x.shape[0])])


def batched_matrix_multiply(x, y, use_loop=True):
    if not use_loop:
        return torch.einsum("bnm,bmp->bnp", x, y)
    return _one_by_one(x, y)


def normalize_columns(x):
    xd = x.double()
    M = xd.shape[0]
    mu = xd.sum(dim=0) / M
    sigma = ((xd - mu) ** 2).sum(dim=0).div(M - 1).sqrt()
    return ((xd - mu) / sigma).to(x.dtype)


def mm_on_gpu(x, w):
    device = torch.device("cuda")
    return torch.matmul(x.to(device), w.to(device)).to("cpu")
