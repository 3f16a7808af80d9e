"""deploy/nginx/tierspayant.conf in front of a real platform: nginx started on free ports
with a self-signed certificate made here, uvicorn serving the app behind it. TLS below 1.2
is refused, HSTS is sent once, ``/metrics`` is refused on the public listener and served
on the monitoring one, an oversized body stops at the proxy, plain HTTP redirects, and a
client's request id is replaced by the proxy's."""

from __future__ import annotations

import dataclasses
import http.client
import re
import socket
import ssl
import subprocess
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from tests.unit.ops.support import DEPLOY, self_signed, tool
from tierspayant.api.app import create_app
from tierspayant.app.platform import Platform

TOKEN = "reverse-proxy-test-metrics-token-0123456789"
SQLITE_ONLY = pytest.mark.parametrize("engine_name", ["sqlite"])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Proxy:
    https: int
    http: int
    monitoring: int
    cert: Path


def _site(cert: Path, key: Path, upstream: int, ports: dict[str, int]) -> str:
    text = (DEPLOY / "nginx" / "tierspayant.conf").read_text(encoding="utf-8")
    text = text.replace("/etc/ssl/tierspayant/fullchain.pem", str(cert))
    text = text.replace("/etc/ssl/tierspayant/privkey.pem", str(key))
    text = text.replace("server 127.0.0.1:8000;", f"server 127.0.0.1:{upstream};")
    text = re.sub(r"(?m)^\s*listen \[::\]:.*\n", "", text)  # no IPv6 needed here
    text = text.replace("listen 443 ssl", f"listen 127.0.0.1:{ports['https']} ssl")
    text = text.replace("listen 80;", f"listen 127.0.0.1:{ports['http']};")
    text = text.replace("listen 9443 ssl", f"listen 127.0.0.1:{ports['monitoring']} ssl")
    return text.replace("allow 10.20.0.0/24;", "allow 127.0.0.1;")


@pytest.fixture
def proxy(platform: Platform, tmp_path: Path) -> Iterator[Proxy]:
    nginx = tool("nginx")
    settings = platform.settings
    # Behind the proxy, as in production: the app sends HSTS too (the proxy keeps one).
    platform.settings = dataclasses.replace(
        settings,
        metrics_token=TOKEN,
        sessions=dataclasses.replace(settings.sessions, portal_tls=True),
    )
    upstream = _free_port()
    config = uvicorn.Config(
        create_app(platform),
        host="127.0.0.1",
        port=upstream,
        log_level="warning",
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="proxied-app", daemon=True)
    thread.start()
    cert, key = self_signed(tmp_path)
    ports = {"https": _free_port(), "http": _free_port(), "monitoring": _free_port()}
    (tmp_path / "site.conf").write_text(_site(cert, key, upstream, ports), encoding="utf-8")
    main = tmp_path / "nginx.conf"
    main.write_text(
        f"daemon off;\npid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\n"
        f"events {{}}\nhttp {{\n  access_log off;\n"
        f"  client_body_temp_path {tmp_path}/body;\n  proxy_temp_path {tmp_path}/proxy;\n"
        f"  include {tmp_path}/site.conf;\n}}\n",
        encoding="utf-8",
    )
    child = subprocess.Popen(
        [nginx, "-c", str(main), "-p", f"{tmp_path}/"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while not (server.started and _listening(ports["https"])):
            assert child.poll() is None, child.communicate()[1]
            assert time.monotonic() < deadline, "nginx or uvicorn did not start"
            time.sleep(0.05)
        yield Proxy(ports["https"], ports["http"], ports["monitoring"], cert)
    finally:
        child.terminate()
        child.communicate(timeout=20)
        server.should_exit = True
        thread.join(timeout=10)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _context(proxy: Proxy, *, maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(proxy.cert))
    context.check_hostname = False  # the certificate names tierspayant.example
    if maximum is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # old versions, on purpose
            context.minimum_version = ssl.TLSVersion.TLSv1
            context.maximum_version = maximum
        context.set_ciphers("ALL:@SECLEVEL=0")  # let the client offer old versions
    return context


def _get(
    proxy: Proxy,
    path: str,
    *,
    port: int | None = None,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> http.client.HTTPResponse:
    connection = http.client.HTTPSConnection(
        "127.0.0.1", port or proxy.https, context=_context(proxy), timeout=30
    )
    connection.request(method, path, body=body, headers=headers or {})
    answer = connection.getresponse()
    answer.read()
    connection.close()
    return answer


@SQLITE_ONLY
def test_tls_below_1_2_is_refused_and_1_2_and_1_3_are_served(proxy: Proxy) -> None:
    for version in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
        with socket.create_connection(("127.0.0.1", proxy.https), timeout=10) as raw:
            context = _context(proxy, maximum=version)
            with pytest.raises(ssl.SSLError) as refused:
                context.wrap_socket(raw, server_hostname="tierspayant.example")
            # The server's alert, not the client unable to offer the version.
            assert "alert protocol version" in str(refused.value), refused.value
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        with socket.create_connection(("127.0.0.1", proxy.https), timeout=10) as raw:
            context = _context(proxy)
            context.minimum_version = context.maximum_version = version
            with context.wrap_socket(raw, server_hostname="tierspayant.example") as tls:
                assert (
                    tls.version()
                    == {
                        ssl.TLSVersion.TLSv1_2: "TLSv1.2",
                        ssl.TLSVersion.TLSv1_3: "TLSv1.3",
                    }[version]
                )


@SQLITE_ONLY
def test_readiness_answers_through_the_proxy_with_one_hsts_header(proxy: Proxy) -> None:
    answer = _get(proxy, "/readyz")
    assert answer.status == 200
    assert answer.headers.get_all("Strict-Transport-Security") == [
        "max-age=63072000; includeSubDomains"
    ]
    # The proxy's own refusals carry it too.
    refused = _get(proxy, "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert refused.headers.get_all("Strict-Transport-Security") == [
        "max-age=63072000; includeSubDomains"
    ]


@SQLITE_ONLY
def test_metrics_are_refused_publicly_and_served_on_the_monitoring_listener(
    proxy: Proxy,
) -> None:
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert _get(proxy, "/metrics", headers=bearer).status == 404
    assert _get(proxy, "/metrics?x=1", headers=bearer).status == 404
    monitored = http.client.HTTPSConnection(
        "127.0.0.1", proxy.monitoring, context=_context(proxy), timeout=30
    )
    monitored.request("GET", "/metrics", headers=bearer)
    answer = monitored.getresponse()
    text = answer.read().decode()
    monitored.close()
    assert answer.status == 200
    assert 'tierspayant_readiness_check{check="database"} 1.0' in text
    # The token is still the app's to check; nothing else is served on that listener.
    assert _get(proxy, "/metrics", port=proxy.monitoring).status == 401
    assert _get(proxy, "/readyz", port=proxy.monitoring).status == 404


@SQLITE_ONLY
def test_an_oversized_body_stops_at_the_proxy(proxy: Proxy) -> None:
    answer = _get(
        proxy,
        "/v1/eligibility",
        method="POST",
        body=b"{" + b" " * (300 * 1024) + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert answer.status == 413
    assert answer.headers.get("X-Request-Id") is None  # nginx's page: the app never saw it


@SQLITE_ONLY
def test_plain_http_redirects_and_the_proxy_sets_the_request_id(proxy: Proxy) -> None:
    plain = http.client.HTTPConnection("127.0.0.1", proxy.http, timeout=30)
    plain.request("GET", "/readyz", headers={"Host": "tierspayant.example"})
    redirect = plain.getresponse()
    redirect.read()
    plain.close()
    assert redirect.status == 301
    assert redirect.headers["Location"] == "https://tierspayant.example/readyz"
    answer = _get(proxy, "/healthz", headers={"X-Request-Id": "client-chosen-id"})
    assert re.fullmatch(r"[0-9a-f]{32}", answer.headers["X-Request-Id"])
