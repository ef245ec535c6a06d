"""Intraday demand sensing: the hourly shape of demand, a sequential test against the forecast, the outlook."""
