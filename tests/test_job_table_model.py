"""The finished jobs' table model, headless: filter, sort, pages and the text of each cell."""

from __future__ import annotations

from amc_widgets.core.jobs import COMPLETED, FAILED, STOPPED, JobDescription
from amc_widgets.core.prices import PRICE_LIST, Price
from amc_widgets.ui.models.job_table import PAGE_SIZE, JobTable, row
from tests.dashboard_fakes import assert_imports_no_widgets


def job(name: str, created: float, status: str = COMPLETED, quality: float | None = None, **kw) -> JobDescription:
    return JobDescription(name=name, status=status, secondary_status=status, dataset=kw.pop("dataset", "solder"),
                          instance_type=kw.pop("instance_type", "local"), instance_count=kw.pop("instance_count", 1),
                          hyperparameters={"model": kw.pop("model", "yolov5n")}, created=created,
                          ended=created + kw.pop("seconds", 60),
                          final_metrics={} if quality is None else {"mAP50-95": quality}, **kw)


def test_model_imports_no_widgets():
    assert_imports_no_widgets("amc_widgets.ui.models.job_table")


def test_rows_show_summaries_newest_first_in_pages():
    table = JobTable(jobs=[job(f"job-{i:03d}", created=1_700_000_000 + i, quality=i / 100) for i in range(40)])
    assert table.matching == 40 and table.page_count == 3
    assert [r["name"] for r in table.rows] == [f"job-{i:03d}" for i in range(39, 39 - PAGE_SIZE, -1)]
    table.page = 2
    assert [r["name"] for r in table.rows] == [f"job-{i:03d}" for i in range(9, -1, -1)]
    table.page = 7  # past the end (the page turned while jobs went): the last page
    assert table.page == 2


def test_sorting_by_a_number_puts_jobs_without_one_last():
    table = JobTable(jobs=[job("good", 1, quality=0.6), job("bad", 2, quality=0.1), job("failed", 3, FAILED)],
                     sort_by="map")
    assert [r["name"] for r in table.rows] == ["good", "bad", "failed"]
    assert table.rows[2]["map"] == "-" and table.rows[0]["map"] == "0.600"
    table.descending = False
    assert [r["name"] for r in table.rows] == ["failed", "bad", "good"]
    many = JobTable(jobs=[job(f"j{i:02d}", i, quality=i / 100) for i in range(40)])
    many.page = 2
    many.sort_by = "map"  # a new order shows its top, not the third page of it
    assert many.page == 0 and many.rows[0]["name"] == "j39"
    table.sort_by = "duration"
    assert [r["name"] for r in table.rows] == ["bad", "failed", "good"]  # same durations: by name
    table.jobs = [job("short", 1, seconds=10), job("long", 2, seconds=5000)]
    assert [r["name"] for r in table.rows] == ["short", "long"]


def test_filter_matches_name_dataset_model_or_status_and_goes_back_to_page_one():
    jobs = [job(f"pcb-{i}", i, dataset="pcb") for i in range(20)] + [job("old-solder", 100, STOPPED, model="yolov5s")]
    table = JobTable(jobs=jobs)
    table.page = 1
    table.query = "YOLOV5S"
    assert table.page == 0 and [r["name"] for r in table.rows] == ["old-solder"] and table.matching == 1
    table.query = "stopped"
    assert table.matching == 1
    table.query = "pcb"
    assert table.matching == 20 and table.page_count == 2
    table.page = 1
    table.query = "PCB-1"  # pcb-1, pcb-10 ... pcb-19: one page, from the top
    assert table.page == 0 and table.matching == 11


def test_add_replaces_a_row_of_the_same_name():
    table = JobTable(jobs=[job("a", 1)])
    table.add(job("a", 1, quality=0.5))
    table.add(job("b", 2))
    assert [r["name"] for r in table.rows] == ["b", "a"] and table.rows[1]["map"] == "0.500"


def test_cost_is_billable_time_times_instances_times_price():
    remote = job("remote", 1, instance_type="ml.g4dn.xlarge", instance_count=2, billable_seconds=1800)
    table = JobTable(jobs=[remote, job("here", 2), job("unknown", 3, instance_type="ml.g4dn.xlarge")])
    assert {r["name"]: r["cost"] for r in table.rows} == {
        "remote": "$0.74",  # 0.736 $/h (the catalog's us-east-1 price) x 2 x 0.5 h
        "here": "this machine",
        "unknown": "-",  # no billable time yet
    }
    assert row(remote, None)["cost"] == "-"


def test_cost_uses_the_price_of_the_backends_region_asked_once_per_instance_type():
    asked: list[str] = []

    def frankfurt(instance_type: str) -> Price:
        asked.append(instance_type)
        return Price(instance_type, 0.9, "eu-central-1", PRICE_LIST, 1_700_000_000)

    jobs = [job(f"remote-{i}", i, instance_type="ml.g4dn.xlarge", instance_count=2, billable_seconds=1800)
            for i in range(20)] + [job("here", 30)]
    table = JobTable(jobs=jobs, sort_by="cost")
    table.price_of = frankfurt
    assert table.rows[0]["cost"] == "$0.90" and {r["cost"] for r in table.rows} == {"$0.90"}  # 0.9 $/h x 2 x 0.5 h
    table.page = 1
    table.descending = False
    assert table.rows[0]["cost"] == "this machine"
    assert asked == ["ml.g4dn.xlarge"]
    table.price_of = None  # another backend: the catalog's price again
    assert table.rows[-1]["cost"] == "$0.74"


def test_the_weakest_class_column_names_the_class_the_model_finds_worst():
    jobs = [job("solder", 1, class_metrics={"good": 0.7, "bridge": 0.21, "empty": None}),
            job("other", 2, class_metrics={"good": 0.5, "bridge": 0.4}), job("old", 3)]
    table = JobTable(jobs=jobs, sort_by="weakest")
    assert [(r["name"], r["weakest"]) for r in table.rows] == [("other", "bridge 0.400"), ("solder", "bridge 0.210"),
                                                               ("old", "-")]
