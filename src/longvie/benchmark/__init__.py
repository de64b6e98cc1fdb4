"""Benchmark of generated long videos against their references."""
