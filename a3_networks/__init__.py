"""Assignment 3: fully connected networks (fully_connected_networks) and convolutional networks
(convolutional_networks)."""
