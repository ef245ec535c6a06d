"""Order orchestration: route open order lines to fulfilment nodes by cost, promise, stock and labour.

Entry points: :func:`include.orchestration.router.route_orders` (the router),
:func:`include.orchestration.baselines.route_baseline` (the two rules it is measured against),
:func:`include.orchestration.inputs.batch_nodes` (node capabilities with the labour plan's capacity),
:func:`include.orchestration.contracts.load_orchestration_contracts` (the extracts' data contracts) and
:mod:`include.orchestration.workflow` (what a batch of the ``order_orchestration`` workflow routes and stages).
"""
