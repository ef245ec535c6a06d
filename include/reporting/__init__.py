"""Shelfwise reporting."""
