"""Finance: the sales and returns lines margin analysis reads, and margin/return anomaly review."""
