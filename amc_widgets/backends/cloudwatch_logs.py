"""Following a training job's CloudWatch logs: every host's stream, merged in time order.

SageMaker writes ``/aws/sagemaker/TrainingJobs`` streams named ``<job>/algo-<n>-<time>``.  The
cursor maps each stream to its GetLogEvents forward token, so reading again — in this process or
after a reconnect — continues exactly where it stopped: no gap, no duplicate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from amc_widgets.backends.aws_session import AWS_ERRORS
from amc_widgets.core.container_contract import TRAINING_LOG_GROUP


def host_of(stream_name: str) -> str:
    """'job/algo-2-1700000000' -> 'algo-2'."""
    tail = stream_name.split("/", 1)[-1]
    parts = tail.split("-")
    return "-".join(parts[:2]) if len(parts) >= 2 else tail


class LogFollower:
    def __init__(self, logs, group: str = TRAINING_LOG_GROUP):
        self.logs, self.group = logs, group

    def streams(self, job: str) -> list[str]:
        names = []
        try:
            for page in self.logs.get_paginator("describe_log_streams").paginate(
                    logGroupName=self.group, logStreamNamePrefix=f"{job}/"):
                names += [s["logStreamName"] for s in page.get("logStreams", [])]
        except self.logs.exceptions.ResourceNotFoundException:
            return []  # no log group yet: the job has not written anything
        return sorted(names)

    def _events(self, stream: str, token: str | None) -> tuple[list[dict], str | None]:
        events, current = [], token
        while True:
            kwargs: dict[str, Any] = {"logGroupName": self.group, "logStreamName": stream, "startFromHead": True}
            if current:
                kwargs["nextToken"] = current
            page = self.logs.get_log_events(**kwargs)
            events += page.get("events", [])
            following = page.get("nextForwardToken")
            if not following or following == current:
                return events, current
            current = following

    def read(self, job: str, cursor: dict[str, str] | None) -> tuple[list[str], dict[str, str]]:
        """New lines of every host since ``cursor``; a stream that fails now is read next time."""
        cursor = dict(cursor or {})
        streams = self.streams(job)
        label = len(streams) > 1
        merged: list[tuple[int, int, str]] = []
        for order, stream in enumerate(streams):
            try:
                events, token = self._events(stream, cursor.get(stream))
            except AWS_ERRORS:
                continue  # the cursor keeps this stream's old token: nothing is skipped
            if token:
                cursor[stream] = token
            prefix = f"[{host_of(stream)}] " if label else ""
            merged += [(e["timestamp"], order, prefix + e["message"].rstrip("\n")) for e in events]
        merged.sort(key=lambda item: (item[0], item[1]))
        return [line for _, _, line in merged], cursor


def live_tail(logs, group_arn: str, job: str, on_line: Callable[[str], None],
              should_stop: Callable[[], bool], label: bool = False) -> None:
    """Push new lines to ``on_line`` as CloudWatch Live Tail delivers them (where the account has it);
    ``label`` prefixes each with its host, as :meth:`LogFollower.read` does for several hosts.
    Live Tail sends an update about every second, empty or not, so ``should_stop`` is asked often."""
    response = logs.start_live_tail(logGroupIdentifiers=[group_arn], logStreamNamePrefixes=[f"{job}/"])
    stream: Iterator[dict] = response["responseStream"]
    for event in stream:
        for result in event.get("sessionUpdate", {}).get("sessionResults", []):
            prefix = f"[{host_of(result.get('logStreamName', ''))}] " if label else ""
            on_line(prefix + result["message"].rstrip("\n"))
        if should_stop():
            break
