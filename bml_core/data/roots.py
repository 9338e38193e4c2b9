"""Kept for imports by the old path: the dataset roots live in `bml_core.dataroots` (torch-free)."""

from bml_core.dataroots import DATA_ROOTS_ENV, check_data_path, data_roots, default_data_root

__all__ = ["DATA_ROOTS_ENV", "check_data_path", "data_roots", "default_data_root"]
