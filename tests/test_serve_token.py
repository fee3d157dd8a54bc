"""`amc serve` off loopback asks for a token: the dashboard can start billed jobs with the credentials
in its kernel and read files on the server, so nobody who can reach the port gets a page without it."""

from __future__ import annotations

import http.client
import os
import re
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from amc_widgets.ui.serve import is_loopback, voila_arguments
from tests.conftest import free_port, stop_process_group, wait_until

REPO = Path(__file__).resolve().parent.parent


def test_token_only_where_asked_or_off_loopback():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("dashboard.example")
    assert not [a for a in voila_arguments(Path("d.ipynb"), 8866) if "token" in a.lower()]
    assert "--Voila.token=s3cret" in voila_arguments(Path("d.ipynb"), 8866, "0.0.0.0", token="s3cret")


def get(port: int, path: str) -> tuple[int, dict[str, str], str]:
    """One GET over loopback; redirects are not followed."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        headers = {k.lower(): v for k, v in response.getheaders()}
        return response.status, headers, response.read().decode(errors="replace")
    finally:
        connection.close()


@contextmanager
def amc_serve(tmp_path: Path, *args: str):
    """`amc serve ARGS` on a fresh workspace; yields (port, output so far); stopped, with its kernels, after."""
    port = free_port()
    log = tmp_path / "serve.log"
    env = {**os.environ, "AMC_HOME": str(tmp_path / "home"), "AMC_USER": "tester", "PYTHONPATH": str(REPO)}
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "-m", "amc_widgets.cli", "serve", "--port", str(port), *args],
                                   env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def output() -> str:
        if process.poll() is not None:
            pytest.fail("amc serve exited:\n" + log.read_text())
        return log.read_text()

    try:
        yield port, output
    finally:
        stop_process_group(process, timeout=20)  # voila and its kernels
    assert "Traceback" not in log.read_text()


def answer(port: int, path: str):
    """The first answer of a server that is still starting."""
    def attempt():
        try:
            return get(port, path)
        except OSError:
            return None
    return wait_until(attempt, timeout=120, what="the server", every=0.3)


def test_serve_on_all_interfaces_answers_no_page_without_the_token(tmp_path):
    with amc_serve(tmp_path, "--host", "0.0.0.0") as (port, output):  # the test talks over 127.0.0.1 only
        printed = wait_until(lambda: re.search(rf"http://0\.0\.0\.0:{port}/\?token=([\w-]+)", output()),
                             timeout=120, what="the URL")
        token = printed.group(1)
        assert len(token) >= 32
        answer(port, "/")
        for path in ("/", "/?token=wrong", "/voila/files/README.md", "/api/kernels"):  # the page, files, kernels
            status, headers, body = get(port, path)
            assert status in (302, 401, 403), (path, status)
            assert status != 302 or headers["location"].startswith("/login"), headers
            assert "widget-view" not in body and "amc_widgets" not in body
        login_status, _, login_page = get(port, "/login")
        assert login_status == 200 and "widget-view" not in login_page  # a token form, nothing of the dashboard
        page_status, _, page = get(port, f"/?token={token}")
        assert page_status == 200 and "voila" in page.lower()


def test_loopback_keeps_no_token(tmp_path):
    """What `make dashboard` serves on 127.0.0.1 needs no token (unless `--token`)."""
    with amc_serve(tmp_path) as (port, output):
        wait_until(lambda: f"http://127.0.0.1:{port}/\n" in output(), timeout=120, what="the URL")
        status, _, page = answer(port, "/")
        assert status == 200 and "voila" in page.lower()
