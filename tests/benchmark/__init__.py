"""The benchmark, its metrics and the GPU check (src/longvie/benchmark, quality, bench/)."""
