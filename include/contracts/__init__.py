"""Shelfwise contracts."""
