"""The job description's pure parts: durations and SageMaker's time limits."""

from __future__ import annotations

import pytest

from amc_widgets.core.jobs import (
    FAILED,
    IN_PROGRESS,
    MAX_RUNTIME_HOURS,
    JobDescription,
    JobSpec,
    StatusTransition,
    default_max_wait_hours,
    stopping_condition,
)


def job(status: str, **times) -> JobDescription:
    return JobDescription("amc-j", status, status, "d", "ml.m5.large", 1, {}, created=100.0, **times)


def test_a_running_job_lasts_until_now_and_an_ended_one_until_its_end():
    assert job(IN_PROGRESS).duration(now=160.0) == 60.0
    assert job(FAILED, ended=130.0).duration(now=10_000.0) == 30.0


def test_a_job_that_ended_without_an_end_time_ends_at_its_last_status_change():
    failed = job(FAILED, transitions=[StatusTransition("Starting", 100.0, 110.0), StatusTransition("Failed", 125.0)])
    assert failed.duration(now=1_000.0) == failed.duration(now=100_000.0) == 25.0
    assert job(FAILED).duration(now=5_000.0) == 0.0  # nothing known: no time at all, never a growing one


@pytest.mark.parametrize("runtime, wait", [(1, 2), (48, 96), (400, MAX_RUNTIME_HOURS), (MAX_RUNTIME_HOURS,
                                                                                       MAX_RUNTIME_HOURS)])
def test_spot_jobs_wait_twice_their_runtime_within_28_days(runtime, wait):
    assert default_max_wait_hours(runtime) == wait
    assert stopping_condition(JobSpec("d", {}, spot=True, max_runtime_hours=runtime)) == {
        "MaxRuntimeInSeconds": runtime * 3600, "MaxWaitTimeInSeconds": wait * 3600}


@pytest.mark.parametrize("spec, problem", [
    (JobSpec("d", {}, max_runtime_hours=0), "max hours: must be more than 0"),
    (JobSpec("d", {}, max_runtime_hours=673), "max hours: must be more than 0 and at most 672 (28 days) (got 673)"),
    (JobSpec("d", {}, spot=True, max_runtime_hours=5, max_wait_hours=4), "max wait hours: must be at least max hours"),
    (JobSpec("d", {}, spot=True, max_runtime_hours=5, max_wait_hours=700), "at most 672 (28 days) (got 700)"),
    (JobSpec("d", {}, max_runtime_hours=5, max_wait_hours=8), "max wait hours: only spot jobs wait"),
])
def test_time_limits_outside_the_api_name_the_field(spec, problem):
    with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        stopping_condition(spec)
