"""Following a training job's CloudWatch logs: every host's stream, merged in time order.

SageMaker writes ``/aws/sagemaker/TrainingJobs`` streams named ``<job>/algo-<n>-<time>``.  The
cursor (plain JSON) keeps per stream its GetLogEvents forward token (and the startTime it goes
with) and the position of the last event read: its timestamp, how many events at that timestamp
were read, and its ingestion time.
Reading again continues exactly where it stopped, no gap and no repeat, even after the token has
expired (tokens last 24 h, and the end of a stream hands back the same token, so a quiet host's
token is never refreshed): the stream is then read again from that timestamp, skipping what was
read.  Live Tail continues the same cursor.

What a poll costs does not grow with the log: streams are listed (DescribeLogStreams, throttled
account-wide) only until every host of every attempt has one, and once more when the job ends;
each stream reads at most ``max_pages`` pages per poll.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from amc_widgets.backends.aws_session import AWS_ERRORS
from amc_widgets.core.container_contract import TRAINING_LOG_GROUP
from amc_widgets.core.jobs import JobDescription

MAX_PAGES_PER_READ = 10  # per stream and read: up to 100,000 events or 10 MB; the rest next time
SAMPLED_NOTE = ("[amc] Live Tail is sampling this log (over 500 lines a second): some lines are not shown "
                "here; `amc logs {job}` reads them all")


def host_of(stream_name: str) -> str:
    """'job/algo-2-1700000000' -> 'algo-2'."""
    tail = stream_name.split("/", 1)[-1]
    parts = tail.split("-")
    return "-".join(parts[:2]) if len(parts) >= 2 else tail


def streams_expected(job: JobDescription) -> int:
    """How many log streams the job has once every host of every attempt has written: a spot
    interruption restarts every host, each into a new stream."""
    restarts = sum(t.status == "Interrupted" for t in job.transitions)
    return job.instance_count * (1 + restarts)


def _advance(position: dict[str, Any], event: dict[str, Any]) -> None:
    """Count ``event`` as read in its stream's ``position``."""
    if event["timestamp"] > position.get("time", -1):
        position["time"], position["seen"] = event["timestamp"], 1
    elif event["timestamp"] == position["time"]:
        position["seen"] += 1
    position["ingested"] = max(position.get("ingested", -1), event.get("ingestionTime", -1))


class LogFollower:
    def __init__(self, logs, group: str = TRAINING_LOG_GROUP, max_pages: int = MAX_PAGES_PER_READ):
        self.logs, self.group, self.max_pages = logs, group, max_pages

    def streams(self, job: str) -> list[str]:
        names = []
        try:
            for page in self.logs.get_paginator("describe_log_streams").paginate(
                    logGroupName=self.group, logStreamNamePrefix=f"{job}/"):
                names += [s["logStreamName"] for s in page.get("logStreams", [])]
        except self.logs.exceptions.ResourceNotFoundException:
            return []  # no log group yet: the job has not written anything
        return sorted(names)

    def _stream_events(self, stream: str, position: dict[str, Any]) -> tuple[list[dict], bool]:
        """Events of ``stream`` after ``position`` (updated in place); True when more are waiting."""
        events: list[dict] = []
        seek_time, skip = None, 0
        for _ in range(self.max_pages):
            token = position.get("token")
            kwargs: dict[str, Any] = {"logGroupName": self.group, "logStreamName": stream, "startFromHead": True}
            if token:
                kwargs["nextToken"] = token
            elif "time" in position:  # seek: events at that timestamp come again, the first `seen` were read
                seek_time, skip = position["time"], position["seen"]
                position["since"] = seek_time
            if "since" in position:  # a token goes with the request it came from, as paginators send it
                kwargs["startTime"] = position["since"]
            try:
                page = self.logs.get_log_events(**kwargs)
            except self.logs.exceptions.InvalidParameterException:
                if not token:
                    raise
                del position["token"]  # expired: seek by the last event's timestamp instead
                continue
            for event in page.get("events", []):
                if event["timestamp"] == seek_time and skip:
                    skip -= 1
                    continue
                events.append(event)
                _advance(position, event)
            following = page.get("nextForwardToken")
            if not following or following == token:
                return events, False
            position["token"] = following
        return events, True

    def read(self, job: str, cursor: dict[str, Any] | None, expected: int = 1,
             ended: bool = False) -> tuple[list[str], dict[str, Any], bool]:
        """New lines of every host since ``cursor``, the cursor after them, and whether more lines are
        waiting already (paging is bounded).  ``expected``: streams the job will have; ``ended``: the
        job has ended.  A stream that fails now (other than by an expired token) is read next time."""
        cursor = copy.deepcopy(cursor) if cursor else {"streams": {}}
        positions: dict[str, dict[str, Any]] = cursor["streams"]
        if len(positions) < expected or (ended and not cursor.get("listed_ended")):
            for name in self.streams(job):
                positions.setdefault(name, {})
            cursor["listed_ended"] = ended
        label = len(positions) > 1
        merged: list[tuple[int, int, str]] = []
        more = False
        for order, stream in enumerate(sorted(positions)):
            position = dict(positions[stream])
            try:
                events, waiting = self._stream_events(stream, position)
            except AWS_ERRORS:
                continue  # the cursor keeps this stream's old position: nothing is skipped
            positions[stream], more = position, more or waiting
            prefix = f"[{host_of(stream)}] " if label else ""
            merged += [(e["timestamp"], order, prefix + e["message"].rstrip("\n")) for e in events]
        merged.sort(key=lambda item: (item[0], item[1]))
        return [line for _, _, line in merged], cursor, more


def live_tail(logs, group_arn: str, follower: LogFollower, job: str, cursor: dict[str, Any] | None,
              on_line: Callable[[str], None], should_stop: Callable[[], bool], expected: int = 1,
              label: bool = False) -> dict[str, Any]:
    """Push the lines after ``cursor`` to ``on_line`` as CloudWatch Live Tail delivers them, until
    ``should_stop()`` (asked after every update, about once a second); returns the cursor after the
    last line pushed.  Each session first reads what was written since the cursor, so one that times
    out (after 3 h) is followed by a new one with no gap and no repeat; Live Tail's events read already
    (by ingestion time, per stream) are dropped.  ``label`` prefixes each line with its host, as
    :meth:`LogFollower.read` does.  A refused first session raises; any later failure, or a session
    that ends by itself, returns the cursor, for the caller to poll on from."""
    cursor = copy.deepcopy(cursor) if cursor else {"streams": {}}
    first = True
    while True:
        try:
            stream = logs.start_live_tail(logGroupIdentifiers=[group_arn],
                                          logStreamNamePrefixes=[f"{job}/"])["responseStream"]
        except AWS_ERRORS:
            if first:
                raise
            return cursor
        first = False
        try:
            more = True
            while more:  # what was written before this session began
                lines, cursor, more = follower.read(job, cursor, expected)
                for line in lines:
                    on_line(line)
            _follow_session(stream, cursor, on_line, should_stop, label, SAMPLED_NOTE.format(job=job))
            return cursor  # stopped, or the session ended by itself: the caller polls on
        except ClientError as exc:  # an error event in the stream raises botocore's EventStreamError
            if exc.response.get("Error", {}).get("Code") != "SessionTimeoutException":
                return cursor
        except AWS_ERRORS:
            return cursor
        finally:
            close = getattr(stream, "close", None)
            if close:
                close()


def _follow_session(stream, cursor: dict[str, Any], on_line: Callable[[str], None],
                    should_stop: Callable[[], bool], label: bool, sampled_note: str) -> None:
    """Push one Live Tail session's new lines, until ``should_stop()`` or its end."""
    read_up_to = {name: position.get("ingested", -1) for name, position in cursor["streams"].items()}
    told_sampled = False
    for event in stream:
        update = event.get("sessionUpdate", {})
        if update.get("sessionMetadata", {}).get("sampled") and not told_sampled:
            on_line(sampled_note)
            told_sampled = True
        for result in update.get("sessionResults", []):
            name = result.get("logStreamName", "")
            if result.get("ingestionTime", 0) <= read_up_to.get(name, -1):
                continue  # read already, before this session
            position = cursor["streams"].setdefault(name, {})
            position.pop("token", None)  # polling goes on after this event, found by its timestamp
            _advance(position, result)
            on_line((f"[{host_of(name)}] " if label else "") + result["message"].rstrip("\n"))
        if should_stop():
            return
