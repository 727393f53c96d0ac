"""MLflow: runs, the model registry, provenance of each version and resolving what a user calls a model."""
