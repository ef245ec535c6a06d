"""Return patterns: rates and reason mix against a key's own history and its peers, and the explained
anomalies among them, each with its evidence and the function that owns it.

The recent window (``recent_days`` ending ``today``) is compared with the ``baseline_days`` before it.
Three explained anomalies are looked for, each a vectorised groupby over the window:

* ``defect_surge`` (owner procurement/supplier quality): a supplier batch whose returns are defective far
  more often than its category's in the baseline (binomial z-score);
* ``store_unusual_refunds`` (owner finance): a location whose refunds above the sale price or without a
  receipt are far more frequent than at the other locations in the same window;
* ``online_return_jump`` (owner merchandising): a SKU whose online-bought returns per day jumped against
  its own baseline (Poisson z-score), with the reason that grew most.

:func:`return_profile` gives the rate and reason mix per SKU x return channel x location behind them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from include.returns.params import (
    DEFAULT_PATTERNS,
    OWNER_FINANCE,
    OWNER_MERCHANDISING,
    OWNER_SUPPLIER_QUALITY,
    REASON_CODES,
    PatternParams,
)

#: Columns of the anomalies frame (``supplier_id``: the supplier of a defect surge's batch, else empty).
ANOMALY_COLUMNS = ("pattern", "key", "owner", "supplier_id", "recent_returns", "expected_returns", "ratio",
                   "z_score", "evidence")


def _windows(history: pd.DataFrame, today, params: PatternParams) -> tuple[pd.DataFrame, pd.DataFrame]:
    day = history["returned_at"].to_numpy().astype("datetime64[D]")
    end = np.datetime64(pd.Timestamp(today).date(), "D")
    recent = (day > end - params.recent_days) & (day <= end)
    base = (day > end - params.recent_days - params.baseline_days) & (day <= end - params.recent_days)
    return history.loc[recent], history.loc[base]


def return_profile(history: pd.DataFrame, today, params: PatternParams = DEFAULT_PATTERNS) -> pd.DataFrame:
    """Returns per day and reason mix per SKU x return channel x location, recent against own baseline
    and against peers (the same SKU and channel at the other locations).

    Args:
        history: returns detail lines up to and including ``today``.
        today: the last day of the recent window.
        params: windows.

    Returns:
        Columns ``sku, return_channel, location_id, recent_per_day, baseline_per_day, peer_per_day,
        ratio_own, ratio_peers`` and one ``share_<reason>`` per reason code (recent window).
    """
    recent, base = _windows(history, today, params)
    keys = ["sku", "return_channel", "location_id"]
    r = recent.groupby(keys, observed=True)["quantity"].size().rename("recent") / params.recent_days
    b = base.groupby(keys, observed=True)["quantity"].size().rename("base") / params.baseline_days
    out = pd.concat([r, b], axis=1).fillna(0.0).reset_index()
    out.columns = [*keys, "recent_per_day", "baseline_per_day"]
    totals = out.groupby(["sku", "return_channel"], observed=True)["recent_per_day"].transform("sum")
    peers = out.groupby(["sku", "return_channel"], observed=True)["location_id"].transform("size")
    out["peer_per_day"] = (totals - out["recent_per_day"]) / np.maximum(peers - 1, 1)
    out["ratio_own"] = out["recent_per_day"] / np.maximum(out["baseline_per_day"], 1.0 / params.baseline_days)
    out["ratio_peers"] = out["recent_per_day"] / np.maximum(out["peer_per_day"], 1.0 / params.recent_days)
    mix = pd.crosstab([recent["sku"], recent["return_channel"], recent["location_id"]], recent["reason_code"],
                      normalize="index")
    mix = mix.reindex(columns=list(REASON_CODES), fill_value=0.0).add_prefix("share_").reset_index()
    for key in keys:
        out[key], mix[key] = out[key].astype(str), mix[key].astype(str)
    return out.merge(mix, on=keys, how="left").fillna(0.0)


def classify_patterns(history: pd.DataFrame, today, items: pd.DataFrame,
                      params: PatternParams = DEFAULT_PATTERNS) -> pd.DataFrame:
    """The explained anomalies of the recent window, strongest first.

    Args:
        history: returns detail lines up to and including ``today`` (the baseline window before the recent one).
        today: the last day of the recent window.
        items: item master (``sku, category, supplier_id``), for a batch's category.
        params: windows and thresholds.

    Returns:
        Columns :data:`ANOMALY_COLUMNS`; ``key`` names the batch, location or SKU; ``evidence`` is one
        sentence with the numbers.
    """
    recent, base = _windows(history, today, params)
    frames = [_defect_surges(recent, base, items, params), _unusual_refunds(recent, params),
              _online_jumps(recent, base, params)]
    out = pd.concat([f for f in frames if len(f)], ignore_index=True) if any(len(f) for f in frames) else \
        pd.DataFrame({c: [] for c in ANOMALY_COLUMNS})
    out = out.reindex(columns=list(ANOMALY_COLUMNS)).astype({"supplier_id": object})
    return out.sort_values("z_score", ascending=False, ignore_index=True)


def supplier_defect_surges(patterns: pd.DataFrame) -> pd.DataFrame:
    """Per supplier, the batches flagged with a ``defect_surge`` in ``patterns`` (one or several days'
    :func:`classify_patterns`): ``supplier_id, defect_surge_batches`` (distinct batches) and
    ``defect_surge_evidence`` (the strongest one's sentence), for supplier quality."""
    columns = ["supplier_id", "defect_surge_batches", "defect_surge_evidence"]
    if patterns.empty or "pattern" not in patterns.columns:
        return pd.DataFrame(columns=columns)
    surges = patterns[(patterns["pattern"] == "defect_surge") & patterns["supplier_id"].notna()]
    if surges.empty:
        return pd.DataFrame(columns=columns)
    strongest = surges.sort_values("z_score", ascending=False).drop_duplicates("supplier_id")
    batches = surges.groupby("supplier_id")["key"].nunique()
    return pd.DataFrame({"supplier_id": strongest["supplier_id"].to_numpy(),
                         "defect_surge_batches": batches.reindex(strongest["supplier_id"]).to_numpy(np.int64),
                         "defect_surge_evidence": strongest["evidence"].to_numpy()}).sort_values(
        "supplier_id", ignore_index=True)


def _binomial_z(k: np.ndarray, n: np.ndarray, p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-3, 1 - 1e-3)
    return (k - n * p) / np.sqrt(n * p * (1 - p))


def _defect_surges(recent, base, items, params) -> pd.DataFrame:
    category = items.set_index("sku")["category"]
    r = recent.assign(category=recent["sku"].astype(str).map(category).to_numpy(),
                      defect=(recent["reason_code"] == "defective").to_numpy())
    b = base.assign(category=base["sku"].astype(str).map(category).to_numpy(),
                    defect=(base["reason_code"] == "defective").to_numpy())
    p0 = b.groupby("category")["defect"].mean()
    g = r.dropna(subset=["supplier_batch_id"]).groupby(["supplier_batch_id", "category"], observed=True)["defect"]
    agg = g.agg(["sum", "size"]).reset_index()
    # A batch is one supplier's: the supplier of the SKU most of its returned lines are.
    sku_of = r.dropna(subset=["supplier_batch_id"]).groupby("supplier_batch_id", observed=True)["sku"].agg(
        lambda s: s.astype(str).mode().iloc[0])
    supplier = items.set_index("sku")["supplier_id"] if "supplier_id" in items.columns else pd.Series(dtype=object)
    agg["supplier_id"] = agg["supplier_batch_id"].map(sku_of).map(supplier).to_numpy(object)
    agg["p0"] = agg["category"].map(p0).fillna(r["defect"].mean()).to_numpy(float)
    agg["z"] = _binomial_z(agg["sum"].to_numpy(float), agg["size"].to_numpy(float), agg["p0"].to_numpy(float))
    agg["expected"] = agg["size"] * agg["p0"]
    hit = agg[(agg["sum"] >= params.min_count) & (agg["sum"] >= params.min_ratio * agg["expected"])
              & (agg["z"] >= params.min_z)]
    return pd.DataFrame({
        "pattern": "defect_surge", "key": hit["supplier_batch_id"].astype(str), "owner": OWNER_SUPPLIER_QUALITY,
        "supplier_id": hit["supplier_id"], "recent_returns": hit["sum"].astype(np.int64), "expected_returns": hit["expected"].round(1),
        "ratio": (hit["sum"] / np.maximum(hit["expected"], 1e-9)).round(2), "z_score": hit["z"].round(1),
        "evidence": [f"batch {b} ({c}): {k} of {n} returns defective in {params.recent_days} d against "
                     f"{p:.0%} for its category" for b, c, k, n, p in
                     zip(hit["supplier_batch_id"], hit["category"], hit["sum"], hit["size"], hit["p0"],
                         strict=True)]})


def _unusual_refunds(recent, params) -> pd.DataFrame:
    paid = recent["unit_price"].to_numpy(float) * recent["quantity"].to_numpy(float)
    odd = (recent["refund_amount"].to_numpy(float) > paid * 1.01 + 0.01)
    frame = pd.DataFrame({"location_id": recent["location_id"].astype(str).to_numpy(), "odd": odd,
                          "excess": np.maximum(recent["refund_amount"].to_numpy(float) - paid, 0.0)})
    agg = frame.groupby("location_id").agg(k=("odd", "sum"), n=("odd", "size"), excess=("excess", "sum"))
    total_k, total_n = agg["k"].sum(), agg["n"].sum()
    p_peer = (total_k - agg["k"]) / np.maximum(total_n - agg["n"], 1)
    z = _binomial_z(agg["k"].to_numpy(float), agg["n"].to_numpy(float), p_peer.to_numpy(float))
    expected = agg["n"] * p_peer
    hit = (agg["k"] >= params.min_count) & (agg["k"] >= params.min_ratio * expected) & (z >= params.min_z)
    a, e, zz = agg[hit], expected[hit], z[hit.to_numpy()]
    return pd.DataFrame({
        "pattern": "store_unusual_refunds", "key": a.index.astype(str), "owner": OWNER_FINANCE,
        "recent_returns": a["k"].astype(np.int64).to_numpy(), "expected_returns": e.round(1).to_numpy(),
        "ratio": (a["k"] / np.maximum(e, 1e-9)).round(2).to_numpy(), "z_score": np.round(zz, 1),
        "evidence": [f"{loc}: {k} of {n} refunds above the sale price in {params.recent_days} d "
                     f"(peers {q:.1%}), {x:.2f} refunded in excess" for loc, k, n, q, x in
                     zip(a.index, a["k"], a["n"], p_peer[hit], a["excess"], strict=True)]})


def _online_jumps(recent, base, params) -> pd.DataFrame:
    def online(frame):
        return frame[(frame["purchase_channel"] != "store").to_numpy()]

    r, b = online(recent), online(base)
    k = r.groupby(r["sku"].astype(str)).size()
    lam = (b.groupby(b["sku"].astype(str)).size() / params.baseline_days * params.recent_days).reindex(k.index)
    lam = lam.fillna(0.0).clip(lower=0.5)
    z = (k - lam) / np.sqrt(lam)
    hit = (k >= params.min_count) & (k >= params.min_ratio * lam) & (z >= params.min_z)
    skus = k.index[hit]
    grew = (pd.crosstab(r["sku"].astype(str), r["reason_code"].astype(str), normalize="index")
            .sub(pd.crosstab(b["sku"].astype(str), b["reason_code"].astype(str), normalize="index"), fill_value=0.0))
    top = grew.reindex(skus).idxmax(axis=1) if len(skus) else pd.Series(dtype=object)
    return pd.DataFrame({
        "pattern": "online_return_jump", "key": skus.astype(str), "owner": OWNER_MERCHANDISING,
        "recent_returns": k[hit].astype(np.int64).to_numpy(), "expected_returns": lam[hit].round(1).to_numpy(),
        "ratio": (k[hit] / lam[hit]).round(2).to_numpy(), "z_score": z[hit].round(1).to_numpy(),
        "evidence": [f"{s}: {n} online-bought returns in {params.recent_days} d against {e:.1f} expected "
                     f"from its last {params.baseline_days} d; reason grown most: {t}"
                     for s, n, e, t in zip(skus, k[hit], lam[hit], top.reindex(skus), strict=True)]})
