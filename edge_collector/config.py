"""The collector's configuration: one TOML file, validated at start with errors that say what to fix.

Secure by default: the config must name a security policy from the allow-list, and `None` (no
security) is accepted only with `lab_mode = true` *and* `TWIN_ENV=dev` in the environment.
Secrets never live in the file: the OPC UA user and password come from the environment variables
the file names (default `EDGE_OPCUA_USER` / `EDGE_OPCUA_PASSWORD`).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from plc.tagmap import TAGS

SECURE_POLICIES = ("Aes256Sha256RsaPss", "Aes128Sha256RsaOaep", "Basic256Sha256")
REFUSED_POLICIES = ("None", "Basic128Rsa15", "Basic256")


class ConfigError(ValueError):
    """The configuration is invalid; the message lists every problem with its key."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CollectorSection(_Model):
    id: str = Field(
        "edge-01",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description="collector id: the Delta app-transaction id of its batches; unique per collector",
    )
    lake: Path | None = Field(None, description="lake root; default $TWIN_HOME/lake")
    spool: Path | None = Field(None, description="spool folder; default $TWIN_HOME/spool/<id>")
    lab_mode: bool = Field(False, description="allow security None; only honoured with TWIN_ENV=dev")


class OpcUaSection(_Model):
    endpoint: str = "opc.tcp://127.0.0.1:4840"
    runtime: str = TAGS.default_runtime
    namespace_uri: str = TAGS.namespace_uri
    security_policy: str = "Aes256Sha256RsaPss"
    security_mode: Literal["SignAndEncrypt", "Sign"] = "SignAndEncrypt"
    pki: Path | None = Field(None, description="collector PKI folder; default $TWIN_HOME/pki/collector")
    server_certificate: Path | None = Field(None, description="pinned server certificate (DER or PEM)")
    trust_list: Path | None = Field(None, description="folder of trusted server certificates (alternative to pinning)")
    user_env: str = "EDGE_OPCUA_USER"
    password_env: str = "EDGE_OPCUA_PASSWORD"  # noqa: S105 - the name of an environment variable, not a password
    timeout_s: float = Field(10.0, gt=0)
    session_timeout_s: float = Field(60.0, gt=0, le=600)
    reconnect_max_delay_s: float = Field(4.0, gt=0, le=300)
    watchdog_interval_s: float = Field(1.0, gt=0)
    max_message_size: int = Field(16 * 1024 * 1024, gt=0, description="bytes; bounds memory against a rogue server")
    max_chunk_count: int = Field(256, gt=0)

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        url = urlparse(value)
        if url.scheme != "opc.tcp" or not url.hostname:
            raise ValueError(f"endpoint must look like opc.tcp://host:4840, got {value!r}")
        if url.username or url.password:
            raise ValueError("credentials do not belong in the endpoint URL; use the user_env/password_env variables")
        return value

    @field_validator("security_policy")
    @classmethod
    def _policy(cls, value: str) -> str:
        if value not in (*SECURE_POLICIES, "None"):
            hint = " (deprecated: insecure)" if value in REFUSED_POLICIES else ""
            raise ValueError(f"security_policy {value!r}{hint} is not allowed; use one of {', '.join(SECURE_POLICIES)}")
        return value


class NodeSpec(_Model):
    """An extra node to collect, for a real CODESYS runtime or any server."""

    line: str
    tag: str
    node_id: str = Field(description="full node id string, e.g. ns=4;s=|var|...; or nsu=<uri>;s=...")


class SubscriptionSection(_Model):
    lines: list[str] = Field(default_factory=lambda: ["L1", "L2"], min_length=1)
    tags: list[str] | Literal["default"] = Field(
        "default", description="tag paths per line; 'default' = the tag map's subscribed tags"
    )
    nodes: list[NodeSpec] = Field(default_factory=list)
    publishing_interval_ms: float = Field(100.0, gt=0)
    sampling_interval_ms: float = Field(0.0, ge=0)
    queue_size: int = Field(
        10_000, ge=1, description="server-side monitored item queue (a burst beyond it is discarded by the server)"
    )
    deadband_abs: float = Field(0.0, ge=0, description="absolute deadband for Double tags (0 = every change)")
    buffer_events: int = Field(
        200_000, ge=10, description="client-side notification queue; overflow is counted, never silent"
    )
    stale_after_s: float = Field(
        10.0,
        gt=0,
        description=(
            "no publish response (data or keep-alive) for this long, with the connection up: the subscription is "
            "recreated and the interval recorded as a gap. At least 2 keep-alive periods are used (20 publishing "
            "intervals each): a server that is only busy must not lose the notifications it is about to send"
        ),
    )

    @field_validator("lines")
    @classmethod
    def _lines(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"duplicate line ids in {value}")
        return value

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str] | str) -> list[str] | str:
        if isinstance(value, list):
            known = {t.path for t in TAGS.line_tags}
            unknown = [t for t in value if t not in known]
            if unknown:
                raise ValueError(f"unknown tag(s) {unknown}; add custom nodes under [[subscription.nodes]] instead")
        return value


class DataloggerSection(_Model):
    flush_interval_s: float = Field(1.0, gt=0, le=60)
    max_batch_rows: int = Field(50_000, ge=1)
    max_buffer_rows: int = Field(2_000_000, ge=1)
    compact_every_s: float = Field(600.0, gt=0)
    compact_every_commits: int = Field(
        200, ge=1, description="also compact after this many commits (appends slow down as files pile up)"
    )
    checkpoint_every_commits: int = Field(50, ge=1)
    retention_days: int = Field(
        0,
        ge=0,
        description=(
            "keep this many whole UTC days before today of the edge tables and prune older days, but only days "
            "that landing receipts (edge/landed) wholly cover; 0 (the default) keeps everything"
        ),
    )
    prune_every_s: float = Field(3600.0, gt=0, description="how often the collector prunes, when retention_days > 0")


class MetricsSection(_Model):
    host: str = "127.0.0.1"
    port: int = Field(9464, ge=0, le=65535, description="Prometheus /metrics port; 0 disables")


class CollectorConfig(_Model):
    collector: CollectorSection = Field(default_factory=CollectorSection)
    opcua: OpcUaSection = Field(default_factory=OpcUaSection)
    subscription: SubscriptionSection = Field(default_factory=SubscriptionSection)
    datalogger: DataloggerSection = Field(default_factory=DataloggerSection)
    metrics: MetricsSection = Field(default_factory=MetricsSection)
    variability: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _security(self) -> CollectorConfig:
        if self.opcua.security_policy == "None":
            if not self.collector.lab_mode:
                raise ValueError(
                    "opcua.security_policy = 'None' needs collector.lab_mode = true (and TWIN_ENV=dev): "
                    "it sends data and passwords in clear text"
                )
        elif self.opcua.security_mode != "SignAndEncrypt":
            pass  # Sign is allowed, but a password is then refused at connect if the server would get it in clear
        if self.opcua.server_certificate is not None and self.opcua.trust_list is not None:
            raise ValueError("set opcua.server_certificate (pinning) or opcua.trust_list, not both")
        return self

    # ------------------------------------------------------------------ derived paths
    def twin_home(self) -> Path:
        return Path(os.environ.get("TWIN_HOME", ".twin"))

    def lake(self) -> Path:
        return self.collector.lake or self.twin_home() / "lake"

    def spool(self) -> Path:
        return self.collector.spool or self.twin_home() / "spool" / self.collector.id

    def pki(self) -> Path:
        return self.opcua.pki or self.twin_home() / "pki" / "collector"

    def credentials(self, environ: Mapping[str, str] | None = None) -> tuple[str | None, str | None]:
        env = os.environ if environ is None else environ
        user, password = env.get(self.opcua.user_env) or None, env.get(self.opcua.password_env) or None
        if bool(user) != bool(password):
            raise ConfigError(f"set both {self.opcua.user_env} and {self.opcua.password_env}, or neither")
        return user, password

    def check_environment(self, environ: Mapping[str, str] | None = None) -> None:
        """Checks that depend on the environment, not the file (lab mode, credentials)."""
        env = os.environ if environ is None else environ
        if self.opcua.security_policy == "None" and env.get("TWIN_ENV") != "dev":
            raise ConfigError("security None (lab_mode) is refused unless TWIN_ENV=dev is set: this is not a lab")
        self.credentials(env)

    def redacted(self) -> dict[str, Any]:
        """The effective configuration for logs and metrics: no secrets in it by construction."""
        return self.model_dump(mode="json")


def _format(exc: ValidationError, where: str) -> str:
    lines = [f"{where}: {exc.error_count()} problem(s):"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; `edge-collector check-config --help` shows the format)"
        lines.append(f"  - {key}: {msg}")
    return "\n".join(lines)


def parse_config(text: str, where: str = "config") -> CollectorConfig:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where} is not valid TOML: {exc}") from exc
    try:
        return CollectorConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format(exc, where)) from exc


def load_config(path: Path | None) -> CollectorConfig:
    """The config at `path`, or the defaults (which collect L1 and L2 of a local plc-sim)."""
    if path is None:
        return CollectorConfig()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}; pass an existing file with --config") from exc
    return parse_config(text, str(path))
