"""Shelfwise ingest."""
