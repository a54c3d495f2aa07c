"""A `/timeseries` answer as a pandas DataFrame (pandas imported on use).

May import: anything in the package (top-level glue).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


def timeseries_frame(response: dict[str, Any]) -> pd.DataFrame:
    """A `/timeseries` answer as a DataFrame: one row per date, indexed by UTC datetime.

    Columns: `items` and `thresholds` (lists), `valid_fraction`, `pixels`, `nodata_pixels`,
    `area_m2`, `decimation`, `overview`, `notes`, `interval` (the `datetime=` showing that date
    on the tile endpoints) and `class_{k}_pixels` / `class_{k}_area_m2` per class. The
    response's `algorithm`, `scope`, `group`, `collection` and `polygon_area_m2` are in `.attrs`.
    """
    import pandas as pd

    records = []
    for row in response["rows"]:
        record = {k: v for k, v in row.items() if k != "classes"}
        for c in row["classes"]:
            record[f"class_{c['class']}_pixels"] = c["pixels"]
            record[f"class_{c['class']}_area_m2"] = c["area_m2"]
        records.append(record)
    frame = pd.DataFrame.from_records(records)
    if not frame.empty:
        frame.index = pd.DatetimeIndex(pd.to_datetime(frame.pop("datetime"), utc=True), name="datetime")
    frame.attrs = {k: v for k, v in response.items() if k != "rows"}
    return frame
