"""Returns intelligence: classify return patterns, score fraud and route every returned unit.

Entry points: :func:`include.returns.patterns.classify_patterns` (explained anomalies with owner and
evidence), :func:`include.returns.fraud.score_returns` (calibrated fraud score + evidence, a logistic model
fitted on confirmed past outcomes) with :func:`include.returns.fraud.review_queue` and the rules baseline
:func:`include.returns.fraud.rules_scores`, :func:`include.returns.disposition.route_returns` (the action
with the best net recovery per line, holds for review) with the baseline
:func:`include.returns.disposition.route_baseline`, and
:func:`include.returns.contracts.load_returns_contracts` (the returns system's data contract).
"""
