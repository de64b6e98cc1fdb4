"""Data-quality suites (Great Expectations), importable without importing GX itself."""
