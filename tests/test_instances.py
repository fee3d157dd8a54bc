from __future__ import annotations

import pytest

from amc_widgets.core.instances import (
    CATALOG,
    CostEstimate,
    auto_batch,
    check_storage,
    estimate_cost,
    get_instance,
    training_volume_gb,
    validate_instance_count,
)

SEED_APP_TYPES = ["ml.m5.large", "ml.m5.xlarge", "ml.g4dn.xlarge", "ml.g4dn.12xlarge", "ml.p3.16xlarge"]


def test_catalog_covers_the_seed_app_types():
    assert set(SEED_APP_TYPES) <= set(CATALOG)
    assert all(name == spec.name for name, spec in CATALOG.items())


@pytest.mark.parametrize("name, vcpus, gpus, gpu_name, gpu_memory_gib, memory_gib", [
    ("ml.g4dn.12xlarge", 48, 4, "T4", 16, 192),
    ("ml.g5.12xlarge", 48, 4, "A10G", 24, 192),
    ("ml.g5.48xlarge", 192, 8, "A10G", 24, 768),
    ("ml.p3.16xlarge", 64, 8, "V100", 16, 488),
    ("ml.p3.2xlarge", 8, 1, "V100", 16, 61),
    ("ml.m5.large", 2, 0, "", 0, 8),
])
def test_hardware_specs(name, vcpus, gpus, gpu_name, gpu_memory_gib, memory_gib):
    spec = get_instance(name)
    assert (spec.vcpus, spec.gpus, spec.gpu_name, spec.gpu_memory_gib, spec.memory_gib) == (
        vcpus, gpus, gpu_name, gpu_memory_gib, memory_gib)


def test_catalog_is_consistent():
    for spec in CATALOG.values():
        assert spec.price_per_hour > 0
        assert spec.has_gpu == bool(spec.gpu_name) == (spec.gpu_memory_gib > 0)


def test_prices_rise_with_size_within_a_family_and_gpu_count():
    groups: dict[tuple[str, int], list] = {}
    for spec in CATALOG.values():
        groups.setdefault((spec.name.split(".")[1], spec.gpus), []).append(spec)
    for specs in groups.values():
        prices = [spec.price_per_hour for spec in sorted(specs, key=lambda spec: spec.vcpus)]
        assert prices == sorted(prices) and len(set(prices)) == len(prices)


def test_unknown_type_suggests_close_names():
    with pytest.raises(ValueError, match="did you mean ml.g4dn.xlarge") as caught:
        get_instance("ml.g4dn.xlarg")
    assert "ml.g4dn.xlarg'" in str(caught.value)
    with pytest.raises(ValueError, match="known types: ml.m5.large"):
        get_instance("quantum-computer")


def test_auto_batch_is_16_per_gpu_per_instance():
    assert auto_batch("ml.m5.large") == 16
    assert auto_batch("ml.g4dn.xlarge", 1) == 16
    assert auto_batch("ml.g4dn.12xlarge", 1) == 64
    assert auto_batch(get_instance("ml.p3.16xlarge"), 2) == 256


def test_several_instances_need_a_gpu_type():
    validate_instance_count("ml.g4dn.xlarge", 3)
    validate_instance_count("ml.m5.large", 1)
    with pytest.raises(ValueError, match="Several instances need a GPU instance type; ml.m5.large has no GPU"):
        validate_instance_count("ml.m5.large", 2)
    with pytest.raises(ValueError, match="at least 1"):
        validate_instance_count("ml.g5.xlarge", 0)
    with pytest.raises(ValueError, match="no GPU"):
        auto_batch("ml.c5.xlarge", 2)


def test_cost_on_demand_and_spot():
    cost = estimate_cost("ml.g4dn.12xlarge", 2, 5.0, spot=True)
    assert isinstance(cost, CostEstimate)
    assert cost.on_demand == pytest.approx(4.89 * 2 * 5)
    assert cost.spot == pytest.approx(4.89 * 2 * 5 * 0.3)
    assert cost.describe() == ("about $48.90 on-demand for 5.0 h on 2 x ml.g4dn.12xlarge "
                               "($14.67 with spot, up to 70% less); price: built-in us-east-1 list price of 2024, "
                               "an estimate")


def test_cost_without_spot_and_with_another_discount():
    plain = estimate_cost("ml.g4dn.xlarge", 1, 24)
    assert plain.spot is None
    assert plain.describe() == ("about $17.66 on-demand for 24.0 h on 1 x ml.g4dn.xlarge; "
                                "price: built-in us-east-1 list price of 2024, an estimate")
    assert estimate_cost("ml.g4dn.xlarge", 1, 24, spot=True, spot_discount=0.5).spot == pytest.approx(0.736 * 12)


def test_cost_refuses_bad_input():
    with pytest.raises(ValueError, match="no GPU"):
        estimate_cost("ml.m5.xlarge", 2, 1.0)
    with pytest.raises(ValueError, match="hours"):
        estimate_cost("ml.g5.xlarge", 1, 0)
    with pytest.raises(ValueError, match="spot discount"):
        estimate_cost("ml.g5.xlarge", 1, 1.0, spot=True, spot_discount=1.0)


def test_the_volume_holds_the_dataset_with_room_for_outputs():
    assert training_volume_gb(0) == training_volume_gb(10 * 10**9) == 50  # the floor
    assert training_volume_gb(100 * 10**9) == 130  # 100 GB x 1.2 + 10 GB for checkpoints and outputs
    assert "130 GB volume for the 100.0 GB dataset" == check_storage("ml.p3.2xlarge", 100 * 10**9)


def test_nvme_types_ignore_the_volume_and_must_hold_the_dataset():
    assert CATALOG["ml.g4dn.xlarge"].nvme_gb == 125 and CATALOG["ml.m5.large"].nvme_gb == 0
    assert "125 GB NVMe instance storage" in check_storage("ml.g4dn.xlarge", 50 * 10**9)
    assert "does not apply" in check_storage("ml.g4dn.xlarge", 50 * 10**9)
    with pytest.raises(ValueError, match="needs about 250 GB, more than the 125 GB of NVMe storage of ml.g4dn.xlarge"):
        check_storage("ml.g4dn.xlarge", 200 * 10**9)
    check_storage("ml.g5.12xlarge", 200 * 10**9)  # 3.8 TB
