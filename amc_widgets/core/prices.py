"""Training prices per instance-hour: the connected region's, read from the AWS Price List and kept
on disk with the day they were read; the built-in us-east-1 table (instances.py) when none can be
read, labelled as an estimate.  Pure: the Price List client lives in backends/aws_prices.py."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from amc_widgets.core.instances import get_instance

MAX_AGE_DAYS = 7  # a price read longer ago is read again (AWS changes prices rarely)
BUILT_IN_REGION, BUILT_IN_YEAR = "us-east-1", "2024"
PRICE_LIST, BUILT_IN = "AWS Price List", "built-in"


@dataclass(frozen=True)
class Price:
    """USD per instance-hour of one instance type in one region, and where the figure comes from."""

    instance_type: str
    per_hour: float
    region: str
    source: str  # PRICE_LIST or BUILT_IN
    read_at: float | None = None  # when the Price List was read (epoch seconds); None for the built-in table

    @property
    def is_estimate(self) -> bool:
        return self.source == BUILT_IN

    def describe(self) -> str:
        """Where the price comes from, for the cost line."""
        if self.is_estimate:
            return (f"built-in {BUILT_IN_REGION} list price of {BUILT_IN_YEAR}, an estimate"
                    + ("" if self.region == BUILT_IN_REGION else f": {self.region}'s price was not available"))
        day = datetime.fromtimestamp(self.read_at or 0, timezone.utc).strftime("%Y-%m-%d")
        return f"{PRICE_LIST}, {self.region}, read {day}"


def built_in_price(instance_type: str, region: str) -> Price:
    """The catalog's us-east-1 price, labelled as an estimate for ``region``."""
    return Price(instance_type, get_instance(instance_type).price_per_hour, region, BUILT_IN)


def on_demand_hourly_usd(price_list: list[str]) -> float | None:
    """The on-demand USD price per hour in GetProducts' ``PriceList`` (each entry a JSON string in
    AWS's shape: product attributes, OnDemand terms with price dimensions); spot usage types are
    skipped, and of several prices the highest is taken (a cost estimate is a ceiling)."""
    prices = []
    for entry in price_list:
        product = json.loads(entry)
        if "spot" in product.get("product", {}).get("attributes", {}).get("usagetype", "").lower():
            continue
        for term in product.get("terms", {}).get("OnDemand", {}).values():
            for dimension in term.get("priceDimensions", {}).values():
                usd = float(dimension.get("pricePerUnit", {}).get("USD", 0) or 0)
                if dimension.get("unit", "").lower() in ("hrs", "hours", "hour") and usd > 0:
                    prices.append(usd)
    return max(prices, default=None)


class PriceCache:
    """Prices read from the Price List, in one JSON file (``region -> instance type -> {usd, read_at}``),
    written whole to a temporary file and renamed, so a crash never leaves half a file."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time):
        self.path, self.clock = Path(path), clock

    def _load(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, region: str, instance_type: str) -> Price | None:
        """The stored price (fresh or not: see :meth:`is_fresh`), or None."""
        entry = self._load().get(region, {}).get(instance_type)
        if not isinstance(entry, dict) or not isinstance(entry.get("usd"), (int, float)):
            return None
        return Price(instance_type, float(entry["usd"]), region, PRICE_LIST, float(entry.get("read_at", 0)))

    def is_fresh(self, price: Price) -> bool:
        return self.clock() - (price.read_at or 0) < MAX_AGE_DAYS * 86400

    def put(self, region: str, instance_type: str, usd: float) -> Price:
        data = self._load()
        now = self.clock()
        data.setdefault(region, {})[instance_type] = {"usd": usd, "read_at": now}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".{self.path.name}.{os.getpid()}.partial")
        partial.write_text(json.dumps(data, indent=1, sort_keys=True))
        partial.replace(self.path)
        return Price(instance_type, usd, region, PRICE_LIST, now)
