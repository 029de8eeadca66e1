"""Altair (Vega-Lite) charts, as Streamlit ships them."""

from __future__ import annotations

from datetime import timedelta

import altair as alt
import pandas as pd


def time_axis(span: timedelta) -> alt.Axis:
    """Hours over a day; a date at each midnight over longer windows (Vega's own choice there
    labels every tick "12 PM"). Times are UTC: the summaries' buckets are naive UTC, which
    Vega reads as local time and so shows unchanged."""
    if span <= timedelta(days=2):
        return alt.Axis(format="%H:%M", labelAngle=0)
    return alt.Axis(format="%b %d", labelAngle=0, tickCount={"interval": "day", "step": max(1, span.days // 10)})


def lines(frame: pd.DataFrame, columns: dict[str, str], title: str, unit: str, span: timedelta) -> alt.Chart:
    """One line per column (column -> legend label) over `bucket_start`, a window `span` long."""
    long = frame.melt(id_vars="bucket_start", value_vars=list(columns), var_name="series", value_name="value")
    long["series"] = long["series"].map(columns)
    return (
        alt.Chart(long, title=title)
        .mark_line(point=True)
        .encode(
            x=alt.X("bucket_start:T", title=None, axis=time_axis(span)),
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


def bars(
    frame: pd.DataFrame, category: str, value: str, title: str, fmt: str = ",.4~f", axis_format: str = ",.2~r"
) -> alt.Chart:
    """Horizontal bars, largest first. `axis_format` ("$,.2~r": $0.0005, $1,500) keeps small money short."""
    return (
        alt.Chart(frame, title=title)
        .mark_bar()
        .encode(
            x=alt.X(f"{value}:Q", title=None, axis=alt.Axis(format=axis_format)),
            y=alt.Y(f"{category}:N", sort="-x", title=None, axis=alt.Axis(labelLimit=0)),  # whole model names
            tooltip=[alt.Tooltip(f"{category}:N"), alt.Tooltip(f"{value}:Q", format=fmt)],
        )
    )
