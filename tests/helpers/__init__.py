"""What the tests share besides fixtures: project copies, videos, the fault harness, PostgreSQL."""
