"""Training: the one trainer (`cnnc train` and the search's evaluator), data sets, features, run records."""
