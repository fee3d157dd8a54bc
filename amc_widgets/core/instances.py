"""SageMaker training instance types: hardware, list price, automatic batch size, cost estimates."""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from amc_widgets.core.prices import Price

# Images per step per GPU (or per CPU instance) when the batch size is left to AMC.
BATCH_PER_DEVICE = 16
THIS_MACHINE = "local"  # the local backend's one "instance": the machine AMC runs on


@dataclass(frozen=True)
class InstanceType:
    """One training instance type; ``gpu_memory_gib`` is per GPU (0 on CPU types)."""

    name: str
    vcpus: int
    gpus: int
    gpu_memory_gib: int
    memory_gib: int
    price_per_hour: float
    gpu_name: str
    nvme_gb: int = 0  # NVMe instance storage, which SageMaker uses instead of an EBS volume of VolumeSizeInGB

    @property
    def has_gpu(self) -> bool:
        return self.gpus > 0


def _cpu(name: str, vcpus: int, memory_gib: int, price_per_hour: float) -> InstanceType:
    return InstanceType(name, vcpus, 0, 0, memory_gib, price_per_hour, "")


def _gpu(name: str, vcpus: int, memory_gib: int, gpus: int, gpu_name: str, gpu_memory_gib: int,
         price_per_hour: float, nvme_gb: int = 0) -> InstanceType:
    return InstanceType(name, vcpus, gpus, gpu_memory_gib, memory_gib, price_per_hour, gpu_name, nvme_gb)


# Prices: SageMaker training on-demand list prices in USD per instance-hour, us-east-1, as of 2024.
# They are estimates for planning: other regions, later price changes and taxes differ.
# NVMe: the instance storage of the g4dn and g5 types (EC2's instance-type specifications), in GB.
CATALOG: dict[str, InstanceType] = {spec.name: spec for spec in (
    _cpu("ml.m5.large", 2, 8, 0.115),
    _cpu("ml.m5.xlarge", 4, 16, 0.23),
    _cpu("ml.m5.2xlarge", 8, 32, 0.461),
    _cpu("ml.m5.4xlarge", 16, 64, 0.922),
    _cpu("ml.c5.xlarge", 4, 8, 0.204),
    _cpu("ml.c5.2xlarge", 8, 16, 0.408),
    _cpu("ml.c5.4xlarge", 16, 32, 0.816),
    _gpu("ml.g4dn.xlarge", 4, 16, 1, "T4", 16, 0.736, 125),
    _gpu("ml.g4dn.2xlarge", 8, 32, 1, "T4", 16, 0.94, 225),
    _gpu("ml.g4dn.4xlarge", 16, 64, 1, "T4", 16, 1.505, 225),
    _gpu("ml.g4dn.8xlarge", 32, 128, 1, "T4", 16, 2.72, 900),
    _gpu("ml.g4dn.12xlarge", 48, 192, 4, "T4", 16, 4.89, 900),
    _gpu("ml.g4dn.16xlarge", 64, 256, 1, "T4", 16, 5.44, 900),
    _gpu("ml.g5.xlarge", 4, 16, 1, "A10G", 24, 1.408, 250),
    _gpu("ml.g5.2xlarge", 8, 32, 1, "A10G", 24, 1.515, 450),
    _gpu("ml.g5.4xlarge", 16, 64, 1, "A10G", 24, 2.03, 600),
    _gpu("ml.g5.8xlarge", 32, 128, 1, "A10G", 24, 3.06, 900),
    _gpu("ml.g5.12xlarge", 48, 192, 4, "A10G", 24, 7.09, 3800),
    _gpu("ml.g5.16xlarge", 64, 256, 1, "A10G", 24, 6.096, 1900),
    _gpu("ml.g5.24xlarge", 96, 384, 4, "A10G", 24, 10.18, 3800),
    _gpu("ml.g5.48xlarge", 192, 768, 8, "A10G", 24, 20.36, 7600),
    _gpu("ml.p3.2xlarge", 8, 61, 1, "V100", 16, 3.825),
    _gpu("ml.p3.8xlarge", 32, 244, 4, "V100", 16, 14.688),
    _gpu("ml.p3.16xlarge", 64, 488, 8, "V100", 16, 28.152),
)}


def get_instance(name: str) -> InstanceType:
    """The catalog entry for ``name``; ValueError suggesting close names for an unknown one."""
    spec = CATALOG.get(name.strip())
    if spec is not None:
        return spec
    close = difflib.get_close_matches(name.strip(), CATALOG, n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}?" if close else f"known types: {', '.join(CATALOG)}"
    raise ValueError(f"Unknown instance type {name!r}; {hint}")


def _resolve(instance: InstanceType | str) -> InstanceType:
    return instance if isinstance(instance, InstanceType) else get_instance(instance)


def validate_instance_count(instance: InstanceType | str, count: int) -> None:
    """Raise ValueError unless ``count`` >= 1, 1 on this machine, and 1 on CPU types (several CPU
    hosts only add cost): the one place this rule lives."""
    if count < 1:
        raise ValueError(f"The instance count must be at least 1 (got {count})")
    if instance == THIS_MACHINE:
        if count != 1:
            raise ValueError("This machine is one machine: the instance count must be 1")
        return
    spec = _resolve(instance)
    if count > 1 and not spec.has_gpu:
        raise ValueError(f"Several instances need a GPU instance type; {spec.name} has no GPU")


# File mode copies the whole dataset onto the training volume before the container starts; the rest
# holds checkpoints, the model and outputs (a few GB for the largest YOLOv5) and ultralytics' caches.
VOLUME_MARGIN = 1.2  # the dataset, plus a fifth (label caches, rewritten lists, file system overhead)
VOLUME_ROOM_GB = 10  # checkpoints, model, outputs
VOLUME_MIN_GB = 50


def training_volume_gb(dataset_bytes: int) -> int:
    """VolumeSizeInGB for a File-mode job on ``dataset_bytes`` of data: the dataset with a margin,
    plus room for checkpoints and outputs; at least VOLUME_MIN_GB."""
    return max(VOLUME_MIN_GB, math.ceil(dataset_bytes * VOLUME_MARGIN / 1e9 + VOLUME_ROOM_GB))


def check_storage(instance: InstanceType | str, dataset_bytes: int) -> str:
    """Where the job's data goes, in a sentence; ValueError when the instance's NVMe storage (used
    instead of a volume, whatever VolumeSizeInGB says) cannot hold it."""
    spec, needed = _resolve(instance), training_volume_gb(dataset_bytes)
    size = f"{dataset_bytes / 1e9:.1f} GB dataset"
    if not spec.nvme_gb:
        return f"{needed} GB volume for the {size}"
    if needed > spec.nvme_gb:
        raise ValueError(f"The {size} needs about {needed} GB, more than the {spec.nvme_gb} GB of NVMe storage of "
                         f"{spec.name} (SageMaker uses it instead of a volume): choose a larger instance type")
    return f"{spec.nvme_gb} GB NVMe instance storage for the {size} (the volume size does not apply)"


def auto_batch(instance: InstanceType | str, instance_count: int = 1) -> int:
    """Images per step over every GPU and instance: 16 per GPU (16 per CPU instance)."""
    spec = _resolve(instance)
    validate_instance_count(spec, instance_count)
    return BATCH_PER_DEVICE * max(spec.gpus, 1) * instance_count


@dataclass(frozen=True)
class CostEstimate:
    """What a training job costs at most if it runs ``hours`` (on-demand, and with spot)."""

    instance_name: str
    instance_count: int
    hours: float
    on_demand: float
    spot: float | None
    spot_discount: float
    price_source: str = ""  # where the hourly price comes from (Price.describe())

    def describe(self) -> str:
        text = (f"about ${self.on_demand:,.2f} on-demand for {self.hours:.1f} h "
                f"on {self.instance_count} x {self.instance_name}")
        if self.spot is not None:
            text += f" (${self.spot:,.2f} with spot, up to {self.spot_discount:.0%} less)"
        return text + (f"; price: {self.price_source}" if self.price_source else "")


def estimate_cost(instance: InstanceType | str, instance_count: int, hours: float, spot: bool = False,
                  spot_discount: float = 0.7, price: Price | None = None) -> CostEstimate:
    """Hourly price x instances x hours; with ``spot``, also the price less ``spot_discount``.  The
    price is ``price`` (a region's, from the Price List), else the built-in table's, an estimate."""
    from amc_widgets.core.prices import built_in_price  # prices.py reads this catalog

    spec = _resolve(instance)
    price = price or built_in_price(spec.name, "us-east-1")
    validate_instance_count(spec, instance_count)
    if hours <= 0:
        raise ValueError(f"The hours must be more than 0 (got {hours})")
    if not 0 <= spot_discount < 1:
        raise ValueError(f"The spot discount must be a fraction from 0 to below 1 (got {spot_discount})")
    on_demand = price.per_hour * instance_count * hours
    return CostEstimate(instance_name=spec.name, instance_count=instance_count, hours=hours,
                        on_demand=on_demand, spot=on_demand * (1 - spot_discount) if spot else None,
                        spot_discount=spot_discount, price_source=price.describe())


def job_cost(instance_type: str, instance_count: int, billable_seconds: int | None,
             per_hour: float | None = None) -> float | None:
    """What an ended job cost at list price: billable seconds x instances x hourly price (SageMaker bills
    each instance for the billable time), the price ``per_hour`` (the region's) or else the catalog's.
    None on this machine, for an unknown type or no billable time."""
    spec = CATALOG.get(instance_type)
    if spec is None or billable_seconds is None:
        return None
    return (spec.price_per_hour if per_hour is None else per_hour) * instance_count * billable_seconds / 3600
