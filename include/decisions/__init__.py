"""Shelfwise decisions."""
