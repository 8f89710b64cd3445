"""Tests against a real JupyterHub (a package, so that its conftest is not taken for tests/conftest.py)."""
