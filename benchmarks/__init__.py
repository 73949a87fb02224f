"""Benchmarks that measure selfheal against public data sets and published results."""
