"""Altair (Vega-Lite) charts, as Streamlit ships them."""

from __future__ import annotations

import altair as alt
import pandas as pd


def lines(frame: pd.DataFrame, columns: dict[str, str], title: str, unit: str) -> alt.Chart:
    """One line per column (column -> legend label) over `bucket_start`."""
    long = frame.melt(id_vars="bucket_start", value_vars=list(columns), var_name="series", value_name="value")
    long["series"] = long["series"].map(columns)
    return (
        alt.Chart(long, title=title)
        .mark_line(point=True)
        .encode(
            x=alt.X("bucket_start:T", title=None),
            y=alt.Y("value:Q", title=unit),
            color=alt.Color("series:N", title=None, legend=alt.Legend(orient="bottom")),
            # alt.Tooltip objects, not strings: a string makes Altair rebuild its lookups at every chart.
            tooltip=[
                alt.Tooltip("bucket_start:T", title="from"),
                alt.Tooltip("series:N"),
                alt.Tooltip("value:Q", format=",.4~f"),
            ],
        )
    )


def bars(frame: pd.DataFrame, category: str, value: str, title: str, fmt: str = ",.4~f") -> alt.Chart:
    return (
        alt.Chart(frame, title=title)
        .mark_bar()
        .encode(
            x=alt.X(f"{value}:Q", title=None),
            y=alt.Y(f"{category}:N", sort="-x", title=None),
            tooltip=[alt.Tooltip(f"{category}:N"), alt.Tooltip(f"{value}:Q", format=fmt)],
        )
    )
