"""Instance prices of the connected region: read from the AWS Price List (a stand-in answering in AWS's
shape), kept on disk with the day they were read and read again after a week; the built-in us-east-1
table when nothing can be read, labelled as an estimate."""

from __future__ import annotations

import json

import pytest

from amc_widgets.backends.aws_prices import RegionPrices
from amc_widgets.backends.aws_session import AwsCredentials
from amc_widgets.core.instances import CATALOG, estimate_cost
from amc_widgets.core.prices import BUILT_IN, PRICE_LIST, PriceCache, on_demand_hourly_usd
from amc_widgets.ui.models.parameters import ParametersModel
from tests.sagemaker_harness import FakePricing

FRANKFURT = ("eu-central-1", "ml.g4dn.xlarge")  # dearer than the built-in us-east-1 0.736
DAY = 86400.0


class Clock:
    def __init__(self):
        self.now = 1_795_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def pricing():
    return FakePricing({FRANKFURT: 0.9, ("us-east-1", "ml.g4dn.xlarge"): 0.736})


def prices(pricing, tmp_path, clock, region="eu-central-1") -> RegionPrices:
    return RegionPrices(pricing, region, PriceCache(tmp_path / "prices.json", clock=clock))


def test_the_on_demand_training_price_comes_from_the_price_list_shape():
    entries = [FakePricing.product("eu-central-1", "ml.m5.large", "Training", 0.138),
               FakePricing.product("eu-central-1", "ml.m5.large", "Training", 0.04, "Spot-Train")]
    assert on_demand_hourly_usd(entries) == pytest.approx(0.138)
    assert on_demand_hourly_usd([]) is None


def test_the_connected_regions_price_is_read_once_and_kept_with_its_date(pricing, tmp_path, clock):
    price = prices(pricing, tmp_path, clock).price("ml.g4dn.xlarge")
    assert (price.per_hour, price.region, price.source, price.is_estimate) == (0.9, "eu-central-1", PRICE_LIST, False)
    assert price.describe() == "AWS Price List, eu-central-1, read 2026-11-18"
    (request,) = pricing.requests
    assert request["ServiceCode"] == "AmazonSageMaker" and request["MaxResults"] <= 100
    assert {(f["Field"], f["Value"]) for f in request["Filters"]} == {
        ("regionCode", "eu-central-1"), ("instanceType", "ml.g4dn.xlarge"), ("component", "Training")}
    stored = json.loads((tmp_path / "prices.json").read_text())
    assert stored == {"eu-central-1": {"ml.g4dn.xlarge": {"usd": 0.9, "read_at": clock.now}}}

    clock.now += 6 * DAY  # a new session within the week: from the disk, no request
    assert prices(pricing, tmp_path, clock).price("ml.g4dn.xlarge").per_hour == 0.9 and len(pricing.requests) == 1
    pricing.prices[FRANKFURT] = 0.95
    clock.now += 2 * DAY  # older than a week: read again
    assert prices(pricing, tmp_path, clock).price("ml.g4dn.xlarge").per_hour == 0.95 and len(pricing.requests) == 2


def test_offline_the_last_price_read_stays_and_without_one_the_built_in_estimate(pricing, tmp_path, clock):
    prices(pricing, tmp_path, clock).price("ml.g4dn.xlarge")
    pricing.reachable = False
    clock.now += 30 * DAY
    offline = prices(pricing, tmp_path, clock)
    assert offline.price("ml.g4dn.xlarge").per_hour == 0.9  # stale, but this region's, with its date
    estimate = offline.price("ml.g5.xlarge")
    assert (estimate.per_hour, estimate.source) == (CATALOG["ml.g5.xlarge"].price_per_hour, BUILT_IN)
    assert "an estimate" in estimate.describe() and "eu-central-1's price was not available" in estimate.describe()
    asked = len(pricing.requests)
    offline.price("ml.g5.2xlarge")
    assert len(pricing.requests) == asked  # unreachable once: not asked again this session


def test_the_cost_line_uses_the_regions_price_and_says_where_it_comes_from(pricing, tmp_path, clock):
    region = prices(pricing, tmp_path, clock)
    cost = estimate_cost("ml.g4dn.xlarge", 2, 10, price=region.price("ml.g4dn.xlarge"))
    assert cost.on_demand == pytest.approx(18.0)
    assert cost.describe().endswith("; price: AWS Price List, eu-central-1, read 2026-11-18")
    assert "built-in us-east-1 list price of 2024, an estimate" in estimate_cost("ml.g4dn.xlarge", 1, 1).describe()
    params = ParametersModel(local=False)
    params.set_instance("ml.g4dn.xlarge", 1, False, max_hours=10)
    assert params.cost().on_demand == pytest.approx(7.36)
    params.price_of = region.price
    assert params.cost().on_demand == pytest.approx(9.0)


def test_the_price_list_is_asked_in_its_own_region():
    client = AwsCredentials(access_key_id="a", secret_access_key="b", region="eu-central-1").client_factory()
    assert client("pricing").meta.region_name == "us-east-1"
    assert client("sagemaker").meta.region_name == "eu-central-1"
    china = AwsCredentials(access_key_id="a", secret_access_key="b", region="cn-north-1").client_factory()
    assert china("pricing").meta.region_name == "cn-northwest-1"


def test_a_home_that_cannot_be_written_still_gets_the_price(pricing, tmp_path, clock):
    (tmp_path / "home").write_text("a file where the folder would be")
    price = RegionPrices(pricing, "eu-central-1", PriceCache(tmp_path / "home" / "prices.json", clock=clock)).price(
        "ml.g4dn.xlarge")
    assert (price.per_hour, price.is_estimate) == (0.9, False)
