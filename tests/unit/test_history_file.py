"""Unit tests for include.demand.history_file: the analyst's history file, read and checked once."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from include.demand.history_file import (
    PERIOD_ANCHOR,
    HistoryFile,
    HistoryFileError,
    add_history_arguments,
    history_from_args,
    read_history_file,
)
from tests.fixtures.analyst.make_fixtures import scanner_weekly

HEADER = "item,location,date,units,price,deal"


def _csv(tmp_path: Path, *lines: str, name: str = "sales.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def _error(path: Path, **kwargs) -> str:
    with pytest.raises(HistoryFileError) as caught:
        read_history_file(path, **kwargs)
    assert isinstance(caught.value, ValueError)
    return str(caught.value)


def test_a_daily_file_becomes_a_complete_sorted_grid(tmp_path):
    path = _csv(tmp_path, HEADER,
                "B,S1,2024-01-02,3,2.5,False",
                "A,S1,2024-01-01,5,2.0,True",
                "A,S1,2024-01-03,-2,2.0,false",
                "A,S1,2024-01-04,,1.5,TRUE",
                "B,S1,2024-01-05,4,2.5,0")

    history = read_history_file(path, regressors=["price", "deal"])

    frame = history.frame
    assert isinstance(history, HistoryFile) and history.freq == "D" and history.path == path
    assert history.regressors == ("price", "deal") and (history.horizon, history.season_length) == (28, 7)
    assert list(frame.columns) == ["unique_id", "item", "location", "ds", "y", "price", "deal"]
    assert str(frame["ds"].dtype) == "datetime64[ns]"
    assert all(frame[c].dtype == np.float64 for c in ("y", "price", "deal"))
    # Each series runs from its first row to the file's last day; B starts on the 2nd.
    assert frame["unique_id"].tolist() == ["S1|A"] * 5 + ["S1|B"] * 4
    assert frame["ds"].dt.day.tolist() == [1, 2, 3, 4, 5, 2, 3, 4, 5]
    a, b = frame[frame["item"] == "A"], frame[frame["item"] == "B"]
    # The 2nd and 5th have no row, the 4th an empty cell: unknown. A net return counts as zero demand.
    np.testing.assert_array_equal(a["y"].to_numpy(), [5.0, np.nan, 0.0, np.nan, np.nan])
    np.testing.assert_array_equal(a["deal"].to_numpy(), [1.0, 1.0, 0.0, 1.0, 1.0])  # carried into the gaps
    np.testing.assert_array_equal(a["price"].to_numpy(), [2.0, 2.0, 2.0, 1.5, 1.5])
    np.testing.assert_array_equal(b["y"].to_numpy(), [3.0, np.nan, np.nan, 4.0])
    assert (frame["location"] == "S1").all()


def test_fill_missing_zero_makes_absent_periods_zero_sales(tmp_path):
    path = _csv(tmp_path, "item,location,date,units", "A,S1,2024-01-01,5", "A,S1,2024-01-02,", "A,S1,2024-01-04,1")

    history = read_history_file(path, fill_missing="zero")

    assert history.frame["y"].tolist() == [5.0, 0.0, 0.0, 1.0]
    assert "price" not in history.frame.columns  # numeric columns are regressors only when named


def test_weekly_scanner_panel_reads_booleans_and_shares(tmp_path):
    panel = scanner_weekly()
    path = tmp_path / "scanner.parquet"
    panel.to_parquet(path)

    history = read_history_file(path, freq="W", regressors=("price", "deal", "feat"))

    frame = history.frame
    assert (history.horizon, history.season_length) == (13, 52)
    assert len(frame) == 2 * 3 * 120 and frame["unique_id"].nunique() == 6
    assert set(frame["ds"].dt.day_name()) == {"Thursday"}
    assert (frame.groupby("unique_id")["ds"].diff().dropna() == pd.Timedelta(days=7)).all()
    expected = panel.sort_values(["location", "item", "date"])
    np.testing.assert_array_equal(frame["deal"].to_numpy(), expected["deal"].astype(float).to_numpy())
    np.testing.assert_array_equal(frame["feat"].to_numpy(), expected["feat"].to_numpy())
    np.testing.assert_array_equal(frame["y"].to_numpy(), expected["units"].astype(float).to_numpy())


def test_integer_period_index_counts_from_the_anchor(tmp_path):
    path = _csv(tmp_path, "item,location,date,units", "A,S1,1,5", "A,S1,3,2")

    weekly = read_history_file(path, freq="W").frame
    daily = read_history_file(path, freq="D").frame

    assert PERIOD_ANCHOR == pd.Timestamp("2000-01-03")
    assert weekly["ds"].tolist() == [pd.Timestamp("2000-01-10"), pd.Timestamp("2000-01-17"),
                                     pd.Timestamp("2000-01-24")]
    assert weekly["y"].isna().tolist() == [False, True, False]
    assert daily["ds"].tolist() == list(pd.date_range("2000-01-04", periods=3))


def test_parquet_integer_periods_and_rows_named_by_position(tmp_path):
    path = tmp_path / "sales.parquet"
    pd.DataFrame({"item": ["A", "A"], "location": ["S1", "S1"], "date": [0, 1],
                  "units": [1.0, 2.0], "promo": ["yes", "no"]}).to_parquet(path)

    assert read_history_file(path, freq="W").frame["ds"].tolist() == [PERIOD_ANCHOR, PERIOD_ANCHOR + pd.Timedelta(days=7)]
    message = _error(path, regressors=["promo"])
    assert message == (f"{path}: column 'promo' holds 'yes' at row 1, not a number or True/False; fix that value")


@pytest.mark.parametrize(("lines", "kwargs", "expected"), [
    (["item,location,day,units", "A,S1,2024-01-01,1"], {},
     "column 'date' is not in the file; its columns are item, location, day, units. Rename the column that "
     "holds it to 'date'"),
    (["item,location,date,units,deal", "A,S1,2024-01-01,1,0"], {"regressors": ["price"]},
     "column 'price' (named in --regressors) is not in the file; its columns are item, location, date, units, "
     "deal. Add it or drop it from --regressors"),
    (["item,location,date,units", "A,S1,2024-01-01,1", "A,S1,2024-01-02,two"], {},
     "column 'units' holds 'two' at line 3, not a number; fix that value"),
    ([HEADER, "A,S1,2024-01-01,1,2.0,True", "A,S1,2024-01-02,1,2.0,maybe"], {"regressors": ["price", "deal"]},
     "column 'deal' holds 'maybe' at line 3, not a number or True/False"),
    ([HEADER, "A,S1,2024-01-01,1,,True"], {"regressors": ["price"]},
     "column 'price' is empty at line 2; a regressor must be known in every row"),
    (["item,location,date,units", "A,S1,2024-01-01,1", "A,S1,2024-13-45,1"], {},
     "column 'date' holds '2024-13-45' at line 3, which is not a date; write dates as YYYY-MM-DD"),
    (["item,location,date,units", "A,S1,2024-01-01 10:30,1"], {},
     "column 'date' holds '2024-01-01 10:30' at line 2, a time of day"),
    (["item,location,date,units", *[f"A,S1,{d.date()},1" for d in pd.date_range("2024-01-05", periods=12,
                                                                                 freq="7D")], "B,S1,2024-01-10,1"],
     {"freq": "W"},
     "column 'date' holds 2024-01-10 at line 14, a Wednesday, off the weekly grid of Fridays the other rows "
     "follow; move it to its week's Friday"),
    (["item,location,date,units", "A,S1,2024-01-01,1", "A,S1,2024-01-02,1", "A,S1,2024-01-03,1"], {"freq": "W"},
     "column 'date' holds dates on 3 different weekdays (first Monday, then a Tuesday at line 3); weekly dates "
     "must all fall on one weekday. Use --freq D for daily data"),
    (["item,location,date,units", "A,S1,2024-01-01,1", "B,S1,2024-01-01,1", "A,S1,2024-01-01,2"], {},
     "columns 'item', 'location', 'date' repeat at line 2 and line 4 (item 'A', location 'S1', date 2024-01-01); "
     "keep one row per item, location and period"),
    (["item,location,date,units"], {}, "the file has a header but no rows"),
    (["item,location,date,units", ",S1,2024-01-01,1"], {}, "column 'item' is empty at line 2"),
])
def test_every_error_names_the_file_the_column_the_row_and_the_fix(tmp_path, lines, kwargs, expected):
    path = _csv(tmp_path, *lines)

    message = _error(path, **kwargs)

    assert message.startswith(f"{path}: ")
    assert expected in message


def test_an_empty_file_and_a_missing_file_are_errors(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")

    assert _error(empty) == (f"{empty}: the file is empty; it needs a header line item,location,date,units "
                             f"and at least one row")
    assert "no such file" in _error(tmp_path / "absent.csv")
    assert "freq must be 'D' or 'W', got 'M'" in _error(empty, freq="M")
    assert "fill_missing must be 'missing' or 'zero'" in _error(empty, fill_missing="nan")


def test_arguments_document_the_columns_and_read_the_file(tmp_path):
    path = _csv(tmp_path, HEADER, "A,S1,2024-01-05,3,2.0,True", "A,S1,2024-01-19,4,2.0,False")
    parser = argparse.ArgumentParser()
    add_history_arguments(parser)

    args = parser.parse_args(["--input", str(path), "--freq", "W", "--regressors", "price, deal",
                              "--fill-missing", "zero"])
    history = history_from_args(args)

    assert args.horizon is None and history.horizon == 13
    assert history.regressors == ("price", "deal")
    assert history.frame["y"].tolist() == [3.0, 0.0, 4.0]
    helptext = " ".join(parser.format_help().split())
    assert "item, location, date (YYYY-MM-DD, or an integer period counted in days or weeks from Monday " \
           "2000-01-03), units" in helptext and "--fill-missing" in helptext
    with pytest.raises(SystemExit):
        parser.parse_args(["--freq", "D"])  # --input is required
    bad = parser.parse_args(["--input", str(path), "--horizon", "0"])
    with pytest.raises(HistoryFileError, match="--horizon must be at least 1"):
        history_from_args(bad)
