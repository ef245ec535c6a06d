"""Shelfwise procurement: supplier lead-time prediction for open purchase-order lines."""
