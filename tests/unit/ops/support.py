"""What the operations files' tests share: the repository's paths, the metric names the
app exposes, the names an expression reads, and the tools found on the machine."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client import Metric

from tests.conftest import services_required
from tierspayant import metrics

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
OPERATIONS_DOC = ROOT / "docs" / "operations.md"

# Written by Prometheus itself (a target's `up`, the firing alerts), not by the app.
PROMETHEUS_SERIES = frozenset({"up", "ALERTS"})

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
}


def family_names(family: Metric) -> set[str]:
    return {family.name + suffix for suffix in _SUFFIXES[family.type]}


def exposed_names() -> set[str]:
    """Every sample name the app's registry can expose (counters with ``_total``,
    histograms with ``_bucket``, ``_count`` and ``_sum``)."""
    names: set[str] = set()
    for family in metrics.REGISTRY.collect():
        names |= family_names(family)
    return names


_IDENTIFIER = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_FUNCTIONS_AND_KEYWORDS = frozenset(
    {
        "sum", "max", "min", "avg", "count", "rate", "irate", "increase", "delta", "deriv",
        "histogram_quantile", "time", "by", "without", "and", "or", "unless", "on",
        "ignoring", "group_left", "group_right", "vector", "scalar", "clamp_min", "topk",
        "bottomk", "offset", "bool", "abs", "le", "e",
    }
)  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression reads (label matchers, strings, durations and
    numbers left out)."""
    without_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    without_matchers = re.sub(r"\{[^}]*\}", "", without_strings)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_matchers)
    without_grouping = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", "", without_ranges)
    names = set()
    for match in _IDENTIFIER.finditer(without_grouping):
        word = match.group(0)
        before = without_grouping[: match.start()]
        if word in _FUNCTIONS_AND_KEYWORDS or (before and before[-1].isdigit()):
            continue
        names.add(word)
    return names


def anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown text."""
    found = set()
    for line in markdown.splitlines():
        heading = re.match(r"#{1,6}\s+(.*)", line)
        if heading:
            text = heading.group(1).strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", text).replace(" ", "-"))
    return found


def tool(name: str) -> str:
    """The path of a command-line tool; a skip when it is absent, or a failure when the
    services are required (CI installs it: .ci/run)."""
    found = shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/sbin") / name) if p.exists()), None
    )
    if found is None:
        message = f"{name} is not installed (Debian package: see .ci/run)"
        if services_required():
            pytest.fail(message)
        pytest.skip(message)
    return found


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for tierspayant.example and its key, written in
    ``directory`` (valid one day)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tierspayant.example")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    return cert_file, key_file
