"""Errors of bad user input that every layer shares (torch-free, so the dashboard and the
worker client can raise and catch them without loading a model library)."""

from __future__ import annotations


class DatasetError(ValueError):
    """Bad input data: names the config field or the file, and says how to fix it."""

    def __init__(self, message: str, field: str = "dataset", path: str | None = None):
        self.field = field
        self.path = path
        super().__init__(message)
