"""Benchmark of generated long videos against their references (DESIGN.md §3.8)."""
