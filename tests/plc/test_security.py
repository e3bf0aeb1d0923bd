"""Secure by default: encrypted endpoints only, a client trust list, users, and loud lab mode."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from asyncua import Client, ua

from plc.security import PkiLayout, ensure_certificate, hash_password, load_users
from tests.conftest import client_pki, secure_client

USERS = {"operator": hash_password("s3cret-pw")}


async def test_secure_server_offers_only_sign_and_encrypt_endpoints(start_plc: Any) -> None:
    async with start_plc(insecure=False) as plc:
        endpoints = await plc.server.get_endpoints()
        assert {e.SecurityMode for e in endpoints} == {ua.MessageSecurityMode.SignAndEncrypt}
        assert {e.SecurityPolicyUri.rsplit("#", 1)[1] for e in endpoints} == {"Basic256Sha256", "Aes256_Sha256_RsaPss"}
        key = PkiLayout(plc.options.pki_dir).key
        assert key.stat().st_mode & 0o777 == 0o600


async def test_insecure_client_is_refused_by_a_secure_server(start_plc: Any) -> None:
    """S1 (RELIABILITY.md): Insecure client is refused by a secure server."""
    async with start_plc(insecure=False) as plc:
        client = Client(plc.options.endpoint, timeout=5)
        with pytest.raises(Exception) as excinfo:
            await client.connect()
        await client.disconnect()
        assert "BadSecurityPolicyRejected" in repr(excinfo.value) or isinstance(excinfo.value, ua.UaError)
        assert not plc.server.iserver.subscription_service.subscriptions


async def test_untrusted_client_certificate_is_refused_and_kept_for_review(start_plc: Any, tmp_path: Path) -> None:
    """S4 (RELIABILITY.md): Untrusted client certificate is refused and kept for review."""
    async with start_plc(insecure=False, users=USERS) as plc:
        pki = client_pki(tmp_path)  # not trusted by the server
        client = await secure_client(plc, pki, "operator", "s3cret-pw")
        with pytest.raises(Exception):  # noqa: B017 - asyncua surfaces a refused channel as UaError or a closed socket
            await client.connect()
        await client.disconnect()
        rejected = list(PkiLayout(plc.options.pki_dir).rejected.glob("*.der"))
        assert len(rejected) == 1 and plc.validator is not None and plc.validator.rejections >= 1


async def test_trusted_client_with_user_reads_and_writes(start_plc: Any, tmp_path: Path) -> None:
    """S6 (RELIABILITY.md): Trusted client with user reads and writes."""
    async with start_plc(insecure=False, users=USERS) as plc:
        client = await secure_client(plc, client_pki(tmp_path, trusted_by=plc), "operator", "s3cret-pw")
        async with client:
            ns = await client.get_namespace_index("CODESYSSPV3/3S/IecVarAccess")
            feed = client.get_node(ua.NodeId(f"|var|{plc.options.runtime}.Application.L1.Sim.FeedRate", ns))
            await feed.write_value(ua.Variant(10.0, ua.VariantType.Double))
            assert await feed.read_value() == 10.0


async def test_anonymous_and_wrong_password_are_refused_when_users_are_configured(
    start_plc: Any, tmp_path: Path
) -> None:
    """S6 (RELIABILITY.md): Anonymous and wrong password are refused when users are configured."""
    async with start_plc(insecure=False, users=USERS) as plc:
        pki = client_pki(tmp_path, trusted_by=plc)
        anonymous = await secure_client(plc, pki)
        with pytest.raises(ua.uaerrors.BadIdentityTokenRejected):
            await anonymous.connect()
        await anonymous.disconnect()
        wrong = await secure_client(plc, pki, "operator", "guess")
        with pytest.raises(ua.uaerrors.BadUserAccessDenied):
            await wrong.connect()
        await wrong.disconnect()
        assert plc.users.denied == 1


async def test_insecure_mode_is_anonymous_and_loud(start_plc: Any, caplog: pytest.LogCaptureFixture) -> None:
    async with start_plc(insecure=True) as plc:
        endpoints = await plc.server.get_endpoints()
        assert {e.SecurityMode for e in endpoints} == {ua.MessageSecurityMode.None_}
    assert any("INSECURE MODE" in r.getMessage() for r in caplog.records)


def test_private_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    """S6 (RELIABILITY.md): Private key readable by others is refused."""
    pki = PkiLayout(tmp_path / "pki")
    ensure_certificate(pki, "urn:x", "x")
    os.chmod(pki.key, 0o644)
    with pytest.raises(PermissionError, match="chmod 600"):
        ensure_certificate(pki, "urn:x", "x")


def test_certificate_is_created_once_and_reused(tmp_path: Path) -> None:
    pki = PkiLayout(tmp_path / "pki")
    ensure_certificate(pki, "urn:x", "x")
    first = pki.cert.read_bytes()
    ensure_certificate(pki, "urn:x", "x")
    assert pki.cert.read_bytes() == first
    ensure_certificate(pki, "urn:other", "x")  # application URI changed: renewed
    assert pki.cert.read_bytes() != first


def test_users_from_environment_and_file(tmp_path: Path) -> None:
    users_file = tmp_path / "users.toml"
    users_file.write_text(f'[users]\nengineer = "{hash_password("pw")}"\n')
    users = load_users(users_file, {"PLC_SIM_USER": "op", "PLC_SIM_PASSWORD": "x"})
    assert set(users) == {"engineer", "op"}
    with pytest.raises(ValueError, match="PLC_SIM_PASSWORD"):
        load_users(None, {"PLC_SIM_USER": "op"})
    users_file.write_text('[users]\nengineer = "plaintext"\n')
    with pytest.raises(ValueError, match="hash-password"):
        load_users(users_file, {})
