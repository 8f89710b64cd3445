"""A test Kubernetes API server whose pods are real Docker containers (see README.md)."""
