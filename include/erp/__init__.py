"""Shelfwise erp."""
