"""Password file, sessions, CSRF and the exposure rule of the review console (no server needed)."""

from __future__ import annotations

import os
import stat
import time

from extractor.review import auth
from extractor.review.cli import check_exposure


def test_password_is_generated_once_owner_only(tmp_path):
    d = tmp_path / "secrets"
    p = auth.ensure_password(d)
    pw = auth.read_password(p)
    assert len(pw) >= 20
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    assert auth.read_password(auth.ensure_password(d)) == pw  # kept across starts
    assert auth.password_matches(pw, pw) and not auth.password_matches(pw + "x", pw)


def test_session_expires_after_idle_time():
    s: dict = {}
    auth.sign_in(s, "ann")
    assert auth.reviewer_of(s, 60) == "ann"
    s["seen"] = time.time() - 61
    assert auth.reviewer_of(s, 60) is None
    assert s == {}  # cleared: the CSRF token goes too


def test_csrf_token_must_match_the_session():
    s: dict = {}
    auth.sign_in(s, "ann")
    assert auth.csrf_ok(s, s["csrf"])
    assert not auth.csrf_ok(s, None)
    assert not auth.csrf_ok(s, "")
    assert not auth.csrf_ok(s, s["csrf"] + "x")
    assert not auth.csrf_ok({}, "anything")


def test_reviewer_names_are_short_and_printable():
    assert auth.valid_reviewer_name("Dr. Ann O'Neil")
    assert not auth.valid_reviewer_name("")
    assert not auth.valid_reviewer_name("a\tb")
    assert not auth.valid_reviewer_name("x" * 65)


def test_public_address_needs_tls_or_an_explicit_flag():
    assert check_exposure("127.0.0.1", tls=False, insecure_public=False) is None
    assert check_exposure("localhost", tls=False, insecure_public=False) is None
    assert check_exposure("::1", tls=False, insecure_public=False) is None
    assert "TLS" in (check_exposure("0.0.0.0", tls=False, insecure_public=False) or "")
    assert check_exposure("0.0.0.0", tls=True, insecure_public=False) is None
    assert check_exposure("0.0.0.0", tls=False, insecure_public=True) is None


def test_cli_refuses_public_host_without_tls(capsys):
    from extractor.__main__ import main

    assert main(["review", "--host", "0.0.0.0", "--port", "1"]) == 2
    assert "without TLS" in capsys.readouterr().err
