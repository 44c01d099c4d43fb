"""A1 warm-up written the in-place way where the contract allows it (a clone modified in place, scatter_,
index_put_), with loops where the lesson allows them (count_tensor_elements, mutate_tensor) and one comprehension in
the use_loop branch, the no-loop branch written with @."""

import torch


def mutate_tensor(x, indices, values):
    for (i, j), v in zip(indices, values):
        x[i, j] = v
    return x


def count_tensor_elements(x):
    count = 1
    for i in range(x.dim()):
        count = count * x.size(i)
    return int(count)


def create_tensor_of_pi(M, N):
    return torch.zeros(M, N, dtype=torch.float32).fill_(3.14)


def multiples_of_ten(start, stop):
    first = -(-start // 10) * 10
    if first > stop:
        return torch.tensor([], dtype=torch.float64)
    return torch.arange(first, stop + 1, 10).double()


def shuffle_cols(x):
    return torch.stack([x[:, 0], x[:, 0], x[:, 2], x[:, 1]], dim=1)


def take_one_elem_per_col(x):
    rows = torch.tensor([1, 0, 3], device=x.device)
    cols = torch.tensor([0, 1, 2], device=x.device)
    return x[rows, cols]


def count_negative_entries(x):
    return (x < 0).nonzero().shape[0]


def make_one_hot(labels):
    labels = torch.as_tensor(labels)
    y = torch.zeros(labels.shape[0], int(labels.max()) + 1, device=labels.device)
    y.scatter_(1, labels[:, None], 1.0)
    return y


def reshape_practice(x):
    return x.view(2, 3, 4).transpose(0, 1).contiguous().view(3, 8)


def zero_row_min(x):
    y = x.clone()
    y.scatter_(1, x.argmin(dim=1, keepdim=True), 0)
    return y


def batched_matrix_multiply(x, y, use_loop=True):
    if use_loop:
        return torch.stack([torch.mm(a, b) for a, b in zip(x, y)])
    else:
        return x @ y


def normalize_columns(x):
    M = x.shape[0]
    y = x.clone()
    y -= x.sum(dim=0, keepdim=True) / M
    sigma = (y * y).sum(dim=0, keepdim=True).div_(M - 1).sqrt_()
    y /= sigma
    return y


def mm_on_gpu(x, w):
    return (x.cuda().mm(w.cuda())).cpu()
