"""Certificate validity pre-flight (RELIABILITY.md S5): asyncua only logs an expired own
certificate and connects with a pinned server certificate whatever its dates, so the collector
checks both before it connects, and warns ahead of its own certificate's expiry.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from plc.security import load_certificate

#: Below this many days left on its own certificate the collector logs a WARNING at every connect.
CERT_WARN_DAYS = 30.0


class CertificateInvalid(RuntimeError):
    """A certificate the collector would use is expired or not yet valid."""


def certificate_days_left(path: Path, what: str, advice: str, now: datetime | None = None) -> float:
    """Days until the certificate at `path` expires; raises CertificateInvalid naming `what`, the
    validity period and `advice` (what to do) when it has expired or is not yet valid."""
    cert = load_certificate(path)
    now = now or datetime.now(UTC)
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    if end <= now:
        raise CertificateInvalid(
            f"{what} {path} expired on {end:%Y-%m-%d %H:%M} UTC (BadCertificateTimeInvalid); {advice}"
        )
    if start > now:
        raise CertificateInvalid(
            f"{what} {path} is not valid before {start:%Y-%m-%d %H:%M} UTC "
            f"(BadCertificateTimeInvalid); check the system clock, or {advice}"
        )
    return (end - now).total_seconds() / 86400
