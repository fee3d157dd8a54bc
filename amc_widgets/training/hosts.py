"""Waiting for the cluster's host names before a multi-host run.

On SageMaker the ``algo-N`` names can take minutes to resolve after the containers start (the
sagemaker-training-toolkit waits up to 15 minutes for them); torchrun needs the master's address at
once.  :func:`wait_for_hosts` retries, bounded, with a log line while it waits.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from amc_widgets.training.sagemaker_env import ContractError, InstanceError

Resolver = Callable[[str], str]

HOST_WAIT_ENV = "AMC_HOST_WAIT_SECONDS"
DEFAULT_HOST_WAIT_SECONDS = 15 * 60  # as the sagemaker-training-toolkit
HOSTS_FILE_ENV = "AMC_HOSTS_FILE"  # tests and local emulation: an /etc/hosts-style file, read at each try
FIRST_DELAY, MAX_DELAY = 0.5, 10.0  # seconds between tries, doubling
LOG_EVERY = 30.0  # seconds between "still waiting" lines


class HostsUnresolved(InstanceError):
    """Some host names of the cluster did not resolve in time."""


def lookup(name: str) -> str:
    """The IPv4 address of ``name`` from the system's resolver (DNS on SageMaker)."""
    return socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]


def hosts_file_resolver(path: Path) -> Resolver:
    """A resolver that reads ``path`` (``address name...`` per line) at each call; a name not
    (yet) listed raises ``socket.gaierror`` as DNS would."""

    def resolve(name: str) -> str:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            text = ""
        for line in text.splitlines():
            fields = line.split("#", 1)[0].split()
            if len(fields) > 1 and name in fields[1:]:
                return fields[0]
        raise socket.gaierror(socket.EAI_NONAME, f"{name} is not in {path}")

    return resolve


def resolver_from_env(environ: Mapping[str, str] | None = None) -> Resolver:
    """:func:`lookup`, or the hosts file that ``AMC_HOSTS_FILE`` names (local emulation only)."""
    environ = os.environ if environ is None else environ
    path = environ.get(HOSTS_FILE_ENV)
    return hosts_file_resolver(Path(path)) if path else lookup


def wait_seconds_from_env(environ: Mapping[str, str] | None = None) -> float:
    """How long to wait for host names: ``AMC_HOST_WAIT_SECONDS``, 15 minutes by default."""
    environ = os.environ if environ is None else environ
    text = environ.get(HOST_WAIT_ENV, "").strip()
    if not text:
        return DEFAULT_HOST_WAIT_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:
        raise ContractError(f"{HOST_WAIT_ENV} must be a number of seconds >= 0 (got {text!r})")
    return seconds


def wait_for_hosts(hosts: Sequence[str], resolve: Resolver, timeout: float,
                   clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                   log: Callable[[str], None] = print) -> dict[str, str]:
    """Resolve every host (the first is the master), retrying for up to ``timeout`` seconds;
    return their addresses, or raise :class:`HostsUnresolved` naming the ones that never resolved."""
    start = clock()
    addresses: dict[str, str] = {}
    delay, last_log = FIRST_DELAY, None
    while True:
        errors: dict[str, OSError] = {}
        for host in hosts:
            if host not in addresses:
                try:
                    addresses[host] = resolve(host)
                except OSError as exc:
                    errors[host] = exc
        elapsed = clock() - start
        if not errors:
            if last_log is not None:
                log(f"All {len(hosts)} host names resolve, after {elapsed:.0f} s")
            return addresses
        if elapsed >= timeout:
            last = next(iter(errors.values()))
            raise HostsUnresolved(
                f"Host names did not resolve within {timeout:.0f} s: {', '.join(errors)} "
                f"(the master is {hosts[0]}). SageMaker's network between the job's instances did not come up; "
                f"start the job again. (Last error: {last})")
        if last_log is None or clock() - last_log >= LOG_EVERY:
            log(f"Waiting for host names to resolve: {', '.join(errors)} "
                f"({elapsed:.0f} s so far, at most {timeout:.0f} s)")
            last_log = clock()
        sleep(min(delay, timeout - elapsed))
        delay = min(delay * 2, MAX_DELAY)


def wait_for_cluster(hosts: Sequence[str]) -> dict[str, str]:
    """:func:`wait_for_hosts` as the container runs it: resolver and limit from the environment."""
    return wait_for_hosts(hosts, resolver_from_env(), wait_seconds_from_env(),
                          log=lambda line: print(line, flush=True))
