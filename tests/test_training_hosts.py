"""Waiting for the cluster's host names (amc_widgets.training.hosts), with a fake resolver and clock."""

from __future__ import annotations

import socket

import pytest

from amc_widgets.training.hosts import (
    DEFAULT_HOST_WAIT_SECONDS,
    HostsUnresolved,
    hosts_file_resolver,
    lookup,
    resolver_from_env,
    wait_for_hosts,
    wait_seconds_from_env,
)
from amc_widgets.training.sagemaker_env import ContractError


class FakeNetwork:
    """A clock that moves only when slept on, and host names that resolve from a given time on."""

    def __init__(self, ready_at: dict[str, float]):
        self.now = 0.0
        self.ready_at = ready_at
        self.sleeps: list[float] = []
        self.lines: list[str] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def resolve(self, name: str) -> str:
        if self.now < self.ready_at.get(name, float("inf")):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return f"10.0.0.{name.rsplit('-', 1)[1]}"

    def wait(self, hosts, timeout=900.0):
        return wait_for_hosts(hosts, self.resolve, timeout, clock=self.clock, sleep=self.sleep,
                              log=self.lines.append)


def test_names_that_resolve_at_once_need_no_wait():
    network = FakeNetwork({"algo-1": 0, "algo-2": 0})
    assert network.wait(["algo-1", "algo-2"]) == {"algo-1": "10.0.0.1", "algo-2": "10.0.0.2"}
    assert network.sleeps == [] and network.lines == []


def test_waits_for_names_that_resolve_minutes_later_and_says_so():
    network = FakeNetwork({"algo-1": 200.0, "algo-2": 30.0})
    assert network.wait(["algo-1", "algo-2"]) == {"algo-1": "10.0.0.1", "algo-2": "10.0.0.2"}
    assert 200.0 <= network.now < 210.0  # done within one try of the master resolving
    assert network.sleeps[:3] == [0.5, 1.0, 2.0] and max(network.sleeps) == 10.0  # backing off, bounded
    assert network.lines[0] == "Waiting for host names to resolve: algo-1, algo-2 (0 s so far, at most 900 s)"
    assert "algo-1 (" in network.lines[-2] and "algo-2" not in network.lines[-2]  # algo-2 came first
    assert network.lines[-1] == f"All 2 host names resolve, after {network.now:.0f} s"
    assert len(network.lines) <= 2 + 200 / 30  # a line every 30 s, not every try


def test_gives_up_after_the_limit_naming_the_missing_hosts():
    network = FakeNetwork({"algo-1": 0})
    with pytest.raises(HostsUnresolved) as caught:
        network.wait(["algo-1", "algo-2", "algo-3"], timeout=60)
    assert network.now == 60.0  # the last sleep is cut to the limit
    message = str(caught.value)
    assert message.startswith("Host names did not resolve within 60 s: algo-2, algo-3 (the master is algo-1).")
    assert "Name or service not known" in message


def test_hosts_file_resolves_names_once_listed(tmp_path):
    hosts = tmp_path / "hosts"
    resolve = resolver_from_env({"AMC_HOSTS_FILE": str(hosts)})
    with pytest.raises(socket.gaierror):
        resolve("algo-1")  # no file yet
    hosts.write_text("# cluster\n127.0.0.1 algo-1\n10.0.0.2   algo-2 algo-2.local\n")
    assert [resolve(name) for name in ("algo-1", "algo-2", "algo-2.local")] == ["127.0.0.1", "10.0.0.2", "10.0.0.2"]
    with pytest.raises(socket.gaierror):
        hosts_file_resolver(hosts)("algo-3")


def test_without_a_hosts_file_names_go_to_the_system_resolver():
    assert resolver_from_env({}) is lookup
    assert lookup("localhost").startswith("127.")


@pytest.mark.parametrize("value, expected", [(None, DEFAULT_HOST_WAIT_SECONDS), ("", 900), ("30", 30.0), ("0", 0.0)])
def test_wait_limit_from_the_environment(value, expected):
    assert wait_seconds_from_env({} if value is None else {"AMC_HOST_WAIT_SECONDS": value}) == expected


@pytest.mark.parametrize("value", ["soon", "-1", "nan"])
def test_a_bad_wait_limit_is_refused(value):
    with pytest.raises(ContractError, match="AMC_HOST_WAIT_SECONDS must be a number of seconds >= 0"):
        wait_seconds_from_env({"AMC_HOST_WAIT_SECONDS": value})
