"""Where the writer's prices come from: the settings the proxy's lectr_prices_* options hand it.

Light on purpose: the proxy reads these, and the writer process reads them first thing, before
it has loaded genai-prices (lectr/prices/priceupdate.py does the fetching).
"""

from __future__ import annotations

from typing import NamedTuple

# genai_prices.update_prices.DEFAULT_UPDATE_URL, written here so that reading it needs no
# genai-prices import (tests/test_pricing.py checks that the two are equal).
PRICES_URL = "https://raw.githubusercontent.com/pydantic/genai-prices/refs/heads/main/prices/new_data/v2/data.json"


class PriceSettings(NamedTuple):
    """Where the writer's prices come from, besides the data genai-prices bundles."""

    data_file: str = ""  # fetched genai-prices data; "": priceupdate.data_path (<db>.prices.json)
    user_file: str = ""  # the user's price file (prices.yaml); "": none
    url: str = PRICES_URL  # where the schedule fetches from
    refresh_hours: int = 0  # fetch every this many hours; 0: never
