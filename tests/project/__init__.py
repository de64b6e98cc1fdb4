"""The repository as a user meets it: docs, make targets, locks, the CLI catalogue, layering."""
