"""Dashboard sessions: a cookie signed with one secret is refused under another, when altered
or expired; CSRF tokens belong to one session."""

from __future__ import annotations

from pathlib import Path

from steward.security.keys import Principal
from steward.server.ui.session import SessionSigner, _home_secret

ALICE = Principal("tenant-a", "key-1", "admin")


def test_a_cookie_reads_back_as_its_session_and_holds_no_secret() -> None:
    signer = SessionSigner(b"s" * 32, ttl_s=60)
    cookie, session = signer.issue(ALICE)
    assert signer.read(cookie) == session
    assert (session.key_id, session.tenant_id) == ("key-1", "tenant-a")


def test_altered_foreign_and_expired_cookies_are_refused() -> None:
    signer = SessionSigner(b"s" * 32, ttl_s=60)
    cookie, _ = signer.issue(ALICE)
    body, signature = cookie.split(".")
    other_body, _ = signer.issue(Principal("tenant-b", "key-2", "admin"))[0].split(".")
    assert signer.read(f"{other_body}.{signature}") is None
    assert signer.read(cookie + "x") is None
    assert signer.read(body) is None
    assert signer.read(None) is None
    assert SessionSigner(b"t" * 32, ttl_s=60).read(cookie) is None
    expired, _ = SessionSigner(b"s" * 32, ttl_s=-1).issue(ALICE)
    assert signer.read(expired) is None


def test_csrf_tokens_are_per_session() -> None:
    signer = SessionSigner(b"s" * 32, ttl_s=60)
    _, first = signer.issue(ALICE)
    _, second = signer.issue(ALICE)
    token = signer.csrf(first.nonce)
    assert signer.csrf_ok(first.nonce, token)
    assert not signer.csrf_ok(second.nonce, token)
    assert not signer.csrf_ok(first.nonce, None)
    assert not signer.csrf_ok(None, token)


def test_the_home_secret_is_written_once_and_then_shared(tmp_path: Path) -> None:
    path = tmp_path / "ui_session.key"
    first = _home_secret(path)
    assert _home_secret(path) == first
    assert len(first) == 64
    assert path.stat().st_mode & 0o777 == 0o600
