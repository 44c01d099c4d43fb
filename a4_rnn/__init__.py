"""A4: Recurrent networks: the package you fill in. Write your code in rnn_layers.py, lstm_layers.py and
captioning.py; data.py is given."""
