"""Shelfwise demand."""
