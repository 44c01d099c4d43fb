"""Assignment 2: linear classifiers (linear_classifier: SVM and softmax) and a two-layer net (two_layer_net)."""
