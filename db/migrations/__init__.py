"""Alembic migrations of the store, shipped inside the package (applied by `bml db upgrade`)."""
