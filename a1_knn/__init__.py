"""Assignment 1: a PyTorch warm-up (pytorch101) and a k-nearest-neighbour classifier (knn)."""
