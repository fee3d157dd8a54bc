"""SageMaker training prices of the connected region from the AWS Price List API (GetProducts), kept
in a :class:`~amc_widgets.core.prices.PriceCache` and read again after a week; the built-in table
when the Price List cannot be reached.  The Price List answers in one region per partition
(the client factory in aws_session.py picks it), whatever region the prices are for."""

from __future__ import annotations

from typing import Any

from amc_widgets.backends.aws_session import AWS_ERRORS
from amc_widgets.core.prices import PRICE_LIST, Price, PriceCache, built_in_price, on_demand_hourly_usd

SERVICE_CODE = "AmazonSageMaker"
MAX_PAGES = 5  # one instance type in one region is a product or two


class RegionPrices:
    """Training prices per instance-hour for ``region``; ``pricing`` is an injected Price List client."""

    def __init__(self, pricing: Any, region: str, cache: PriceCache):
        self.pricing, self.region, self.cache = pricing, region, cache
        self._unreachable = False  # asked once a session: an offline machine does not wait on every estimate
        self._not_listed: set[str] = set()  # types the Price List has no training price for in this region

    def price(self, instance_type: str) -> Price:
        """A fresh stored price, else one read now, else a stale stored one, else the built-in estimate."""
        stored = self.cache.get(self.region, instance_type)
        if stored is not None and self.cache.is_fresh(stored):
            return stored
        usd = None if self._unreachable or instance_type in self._not_listed else self._read(instance_type)
        if usd is not None:
            try:
                return self.cache.put(self.region, instance_type, usd)
            except OSError:  # a read-only or full home: the price holds for now, unkept
                return Price(instance_type, usd, self.region, PRICE_LIST, self.cache.clock())
        if not self._unreachable:
            self._not_listed.add(instance_type)
        return stored or built_in_price(instance_type, self.region)

    def _read(self, instance_type: str) -> float | None:
        terms = {"regionCode": self.region, "instanceType": instance_type, "component": "Training"}
        request: dict[str, Any] = {"ServiceCode": SERVICE_CODE, "FormatVersion": "aws_v1", "MaxResults": 100,
                                   "Filters": [{"Type": "TERM_MATCH", "Field": field, "Value": value}
                                               for field, value in terms.items()]}
        entries: list[str] = []
        try:
            for _ in range(MAX_PAGES):
                page = self.pricing.get_products(**request)
                entries += page.get("PriceList", [])
                if not page.get("NextToken"):
                    break
                request["NextToken"] = page["NextToken"]
        except AWS_ERRORS:
            self._unreachable = True  # no network, or no pricing:GetProducts permission
            return None
        return on_demand_hourly_usd(entries)
