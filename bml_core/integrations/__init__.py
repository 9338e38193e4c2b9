"""Integrations with other training frameworks (optional extras): `lightning_logger` (a
Lightning `Logger` writing an own-loop run into the store; extra `[lightning]`)."""
