"""`make bench`: speed and memory of the reference and of the grader, each as a ratio against a
baseline measured in the same run, printed as a table (and written to grader-results/bench.json)."""
