"""Benchmarks: measured side by side in one run, reported as rates and ratios (never timed tests)."""
