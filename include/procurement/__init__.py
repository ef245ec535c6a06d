"""Shelfwise procurement: how suppliers deliver, and what to do when they do not.

Entry points: :func:`include.procurement.leadtime.predict_arrivals` (each open PO line's arrival with an
interval, from recent receipts), :func:`include.procurement.disruption.flag_disruptions` and
:func:`include.procurement.disruption.planning_lead_times` (a supplier whose lines go overdue, before anything
late arrives), :func:`include.procurement.scorecards.weekly_scorecards` (OTIF, fill rate, lead time, price,
defects and a reliability score per supplier and supplier x SKU), and
:func:`include.procurement.alternates.rank_alternates` (the suppliers a PO exception may move or split to).
"""
