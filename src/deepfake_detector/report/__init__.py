"""Metrics, evaluation reports, prediction output and benchmarks."""
