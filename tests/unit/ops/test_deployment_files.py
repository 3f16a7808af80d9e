"""deploy/: the systemd units pass ``systemd-analyze verify`` and are hardened, the nginx
example passes ``nginx -t`` with a self-signed certificate made here and keeps TLS 1.2+,
HSTS and the request limits, and the Containerfile keeps its own rules (no registry, an
unprivileged user, the loopback)."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.ops.support import DEPLOY, self_signed, tool
from tierspayant.config import Settings

SYSTEMD = DEPLOY / "systemd"
NGINX = DEPLOY / "nginx" / "tierspayant.conf"
CONTAINERFILE = DEPLOY / "Containerfile"
VENV_BIN = "/opt/tierspayant/.venv/bin/"
SERVICES = sorted(SYSTEMD.glob("*.service"))
HARDENING = (
    "User=tierspayant",
    "Group=tierspayant",
    "EnvironmentFile=/etc/tierspayant/env",
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "CapabilityBoundingSet=",
    "SystemCallFilter=@system-service",
    "UMask=0077",
)


def _installed_units(tmp_path: Path) -> list[Path]:
    """The units with the virtualenv's path pointing at this one (verify checks that
    every command exists), a template instantiated."""
    units = []
    for unit in [*SERVICES, *sorted(SYSTEMD.glob("*.timer"))]:
        text = unit.read_text(encoding="utf-8").replace(VENV_BIN, f"{Path(sys.executable).parent}/")
        name = unit.name.replace("@.service", "@1.service")
        (tmp_path / name).write_text(text, encoding="utf-8")
        units.append(tmp_path / name)
    return units


def test_systemd_verifies_every_unit_without_a_warning(tmp_path: Path) -> None:
    units = _installed_units(tmp_path)
    done = subprocess.run(
        [tool("systemd-analyze"), "verify", *map(str, units)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout + done.stderr == ""


def test_systemd_verify_does_find_a_mistake(tmp_path: Path) -> None:
    """The check above can fail: a misspelt value is reported."""
    broken = tmp_path / "broken.service"
    broken.write_text(
        (SYSTEMD / "tierspayant-api.service")
        .read_text(encoding="utf-8")
        .replace(VENV_BIN, f"{Path(sys.executable).parent}/")
        .replace("ProtectSystem=strict", "ProtectSystem=stric"),
        encoding="utf-8",
    )
    done = subprocess.run(
        [tool("systemd-analyze"), "verify", str(broken)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "stric" in done.stdout + done.stderr


@pytest.mark.parametrize("unit", SERVICES, ids=lambda p: p.name)
def test_every_service_is_hardened_and_writes_only_its_directories(unit: Path) -> None:
    lines = unit.read_text(encoding="utf-8").splitlines()
    for directive in HARDENING:
        assert directive in lines, f"{unit.name}: {directive}"
    writable = [line for line in lines if line.startswith("ReadWritePaths=")]
    assert writable == [line for line in writable if "/var/lib/tierspayant" in line]
    assert writable, unit.name
    assert not any(
        line.startswith("AmbientCapabilities=") and line != "AmbientCapabilities=" for line in lines
    )


def test_the_api_unit_serves_the_factory_on_the_loopback_with_shared_metrics() -> None:
    text = (SYSTEMD / "tierspayant-api.service").read_text(encoding="utf-8")
    factory = re.search(r"--factory (\S+):(\w+)", text)
    assert factory is not None
    assert callable(getattr(importlib.import_module(factory.group(1)), factory.group(2)))
    assert "--host 127.0.0.1" in text
    assert "--forwarded-allow-ips 127.0.0.1" in text
    assert "RuntimeDirectory=tierspayant-metrics" in text
    assert "PROMETHEUS_MULTIPROC_DIR=/run/tierspayant-metrics" in text
    assert "ExecStartPre=/opt/tierspayant/.venv/bin/tierspayant doctor" in text
    work = (SYSTEMD / "tierspayant-work@.service").read_text(encoding="utf-8")
    assert "ExecStart=/opt/tierspayant/.venv/bin/tierspayant work" in work
    assert "PROMETHEUS_MULTIPROC_DIR=/run/tierspayant-metrics" in work
    assert "PartOf=tierspayant-api.service" in work


def test_nginx_accepts_the_example_with_a_self_signed_certificate(tmp_path: Path) -> None:
    nginx = tool("nginx")
    cert_file, key_file = self_signed(tmp_path)
    site = (
        NGINX.read_text(encoding="utf-8")
        .replace("/etc/ssl/tierspayant/fullchain.pem", str(cert_file))
        .replace("/etc/ssl/tierspayant/privkey.pem", str(key_file))
    )
    (tmp_path / "site.conf").write_text(site, encoding="utf-8")
    main = tmp_path / "nginx.conf"
    main.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n  access_log off;\n  include {tmp_path}/site.conf;\n}}\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        [nginx, "-t", "-q", "-c", str(main), "-p", f"{tmp_path}/"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr.strip() == ""  # no warning either


def test_the_nginx_example_keeps_tls_hsts_metrics_and_limits() -> None:
    text = NGINX.read_text(encoding="utf-8")
    protocols = re.findall(r"^\s*ssl_protocols (.*);", text, re.MULTILINE)
    assert protocols
    assert set(protocols) == {"TLSv1.2 TLSv1.3"}
    assert (
        'add_header Strict-Transport-Security "max-age=63072000; includeSubDomains" always;' in text
    )
    public = text.split("# Monitoring listener")[0]
    assert re.search(r"location = /metrics \{\s*return 404;\s*\}", public)
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in text  # set, never appended
    assert "$proxy_add_x_forwarded_for" not in text
    body = re.search(r"client_max_body_size (\d+)k;", text)
    assert body is not None
    assert int(body.group(1)) * 1024 == Settings.max_body_bytes
    header = re.search(r"large_client_header_buffers \d+ (\d+)k;", text)
    assert header is not None
    assert int(header.group(1)) * 1024 == Settings.max_header_bytes


def test_the_containerfile_builds_from_the_local_base_as_an_unprivileged_user() -> None:
    text = CONTAINERFILE.read_text(encoding="utf-8")
    instructions = [
        line.split(None, 1)
        for line in text.splitlines()
        if line and not line.startswith(("#", " "))
    ]
    froms = [args for keyword, args in instructions if keyword == "FROM"]
    assert froms == ["${BASE} AS build", "${BASE}"]  # multi-stage, one local base
    assert "ARG BASE=localhost/tierspayant-base:bookworm" in text
    assert "--no-index" in text  # no package index during the build
    assert "--no-deps" in text  # exactly the set resolved by build-image.sh
    assert [args for keyword, args in instructions if keyword == "USER"] == [
        "tierspayant:tierspayant"
    ]
    assert "TIERSPAYANT_HOST=127.0.0.1" in text
    assert instructions[-1][0] == "CMD"
    script = (DEPLOY / "build-image.sh").read_text(encoding="utf-8")
    assert "deploy/.wheelhouse" in script
    assert "deploy/.wheelhouse" in (DEPLOY.parent / ".gitignore").read_text(encoding="utf-8")
