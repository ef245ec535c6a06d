"""Which released dispositions the nightly still counts as returned units going back into stock."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from include.returns.stock import first_return_day, returning_units

NIGHT = dt.date(2026, 11, 27)


def _released(rows: list[tuple[str, str, str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["ds", "to_location", "sku", "action", "quantity"])


def test_restocked_units_count_until_the_snapshot_shows_them_and_transfers_until_they_arrive():
    released = _released([
        ("2026-11-27", "S1", "A", "restock_as_new", 2.0),  # returned tonight: shelved tomorrow
        ("2026-11-26", "S1", "A", "restock_as_new", 1.0),  # shelved today: in tonight's snapshot
        ("2026-11-25", "S2", "A", "transfer_to", 3.0),  # 1 day + 3 on the road: arrives on the 29th
        ("2026-11-23", "S2", "A", "transfer_to", 4.0),  # arrived on the 27th
        ("2026-11-27", "S1", "B", "open_box", 5.0),  # never new stock of the SKU
        ("2026-11-27", "S1", "B", "liquidate", 1.0),
        ("2026-11-28", "S1", "A", "restock_as_new", 9.0),  # a later day than the night's
    ])
    out = returning_units(released, NIGHT, lag_days=1, transfer_days=3.0)
    assert out.to_dict("records") == [{"location_id": "S1", "sku": "A", "returning": 2.0},
                                      {"location_id": "S2", "sku": "A", "returning": 3.0}]
    # A returns desk that shelves the same day: only what is on the road.
    same_day = returning_units(released, NIGHT, lag_days=0, transfer_days=3.0)
    assert same_day.to_dict("records") == [{"location_id": "S2", "sku": "A", "returning": 3.0}]
    # The window to read from ERP staging starts at the oldest transfer still on the road.
    first = first_return_day(NIGHT, lag_days=1, transfer_days=3.0)
    assert first == dt.date(2026, 11, 24)
    edge = _released([(str(first), "S2", "A", "transfer_to", 1.0), (str(first - dt.timedelta(days=1)), "S2", "A",
                                                                      "transfer_to", 1.0)])
    assert returning_units(edge, NIGHT, lag_days=1, transfer_days=3.0)["returning"].tolist() == [1.0]
    # Part days of travel round up to the next snapshot.
    assert returning_units(released, NIGHT, lag_days=1, transfer_days=2.5)["returning"].sum() == 5.0


def test_nothing_released_nothing_returning_and_a_frame_without_its_columns_is_refused():
    empty = _released([])
    assert returning_units(empty, NIGHT, lag_days=1, transfer_days=3.0).empty
    with pytest.raises(ValueError, match=r"lack column\(s\) \['action'\]"):
        returning_units(empty.drop(columns="action"), NIGHT, lag_days=1, transfer_days=3.0)
    with pytest.raises(ValueError, match="must not be negative"):
        returning_units(empty, NIGHT, lag_days=-1, transfer_days=3.0)


def test_a_transfer_takes_the_days_the_location_master_gives_its_destination():
    from include.returns.stock import transfer_days_by_location

    locations = pd.DataFrame({"location_id": ["S1", "S2", "S3"], "transfer_lead_time_days": [1, 4, None]})
    days = transfer_days_by_location(locations, default=3.0)
    assert days == {"*": 3.0, "S1": 1.0, "S2": 4.0}
    released = _released([("2026-11-25", "S1", "A", "transfer_to", 1.0),  # 1 + 1 day: in tonight's snapshot
                          ("2026-11-25", "S2", "A", "transfer_to", 2.0),  # 1 + 4 days: arrives on the 30th
                          ("2026-11-25", "S3", "A", "transfer_to", 4.0)])  # the default 3: on the 29th
    out = returning_units(released, NIGHT, lag_days=1, transfer_days=days)
    assert out.to_dict("records") == [{"location_id": "S2", "sku": "A", "returning": 2.0},
                                      {"location_id": "S3", "sku": "A", "returning": 4.0}]
    assert first_return_day(NIGHT, lag_days=1, transfer_days=days) == dt.date(2026, 11, 23)  # the slowest: 4 days
