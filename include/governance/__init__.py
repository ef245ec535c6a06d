"""Shelfwise governance."""
