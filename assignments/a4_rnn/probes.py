"""The guard's probes of A4's forbidden names (tests/grader/test_guard.py runs each in the sandbox and checks that
the guard names it): a call written the way a student would, in the test's tensors a (5x4), c (6x4), y (5 class
indices), x (2x3x6x6) and w (4x3x3x3). Staff only: `grader release` never ships this file."""

PROBES = {
    "torch.nn.functional.embedding": "F.embedding(y, a)",
    "torch.embedding": "torch.embedding(a, y)",
    "torch.nn.Embedding": "torch.nn.Embedding(5, 4)(y)",
    "torch.nn.RNN": "torch.nn.RNN(4, 3, batch_first=True)(a[None])",
    "torch.nn.LSTM": "torch.nn.LSTM(4, 3, batch_first=True)(a[None])",
    "torch.nn.GRU": "torch.nn.GRU(4, 3, batch_first=True)(a[None])",
    "torch.nn.RNNCell": "torch.nn.RNNCell(4, 3)(a)",
    "torch.nn.LSTMCell": "torch.nn.LSTMCell(4, 3)(a)",
    "torch.nn.GRUCell": "torch.nn.GRUCell(4, 3)(a)",
    "torch.rnn_tanh_cell": "torch.rnn_tanh_cell(a, a[:, :3], c[:3], c[:3, :3])",
    "torch.rnn_relu_cell": "torch.rnn_relu_cell(a, a[:, :3], c[:3], c[:3, :3])",
    "torch.lstm_cell": "torch.lstm_cell(a, (a[:, :3], a[:, :3]), torch.ones(12, 4), torch.ones(12, 3))",
    "torch.gru_cell": "torch.gru_cell(a, a[:, :3], torch.ones(9, 4), torch.ones(9, 3))",
    "torch.rnn_tanh": "torch.rnn_tanh(a[None], a[None, :1, :3], [c[:3], c[:3, :3]], False, 1, 0.0, False, False, True)",
    "torch.rnn_relu": "torch.rnn_relu(a[None], a[None, :1, :3], [c[:3], c[:3, :3]], False, 1, 0.0, False, False, True)",
    "torch.lstm": "torch.lstm(a[None], (a[None, :1, :3], a[None, :1, :3]), [torch.ones(12, 4), torch.ones(12, 3)], "
    "False, 1, 0.0, False, False, True)",
    "torch.gru": "torch.gru(a[None], a[None, :1, :3], [torch.ones(9, 4), torch.ones(9, 3)], False, 1, 0.0, False, "
    "False, True)",
}
