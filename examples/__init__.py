"""Runnable ember examples on data that ships inside a package (no downloads)."""
