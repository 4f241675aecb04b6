"""Sign-in and request protection of the review console.

* The password is generated once (``secrets.token_urlsafe``) into ``<review_secrets_dir>/review-password``, mode
  0600 in a 0700 directory, and compared in constant time (:func:`hmac.compare_digest`). It is never logged.
* Sessions are Starlette's signed cookies (``SessionMiddleware``, itsdangerous), HttpOnly, SameSite=strict, Secure
  under TLS; the key is random per process, so a restart signs everybody out. A session also expires after
  ``review_session_s`` seconds without a request (checked on the server, not only by the cookie's age).
* Every state-changing request carries the session's CSRF token (a form field or the ``X-CSRF-Token`` header);
  a request without the right token is refused with 403.
"""

from __future__ import annotations

import hmac
import os
import secrets
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

PASSWORD_FILE = "review-password"
CSRF_HEADER = "X-CSRF-Token"


def ensure_password(secrets_dir: Path) -> Path:
    """The password file, created with a fresh random password when missing (owner-only, never world-readable,
    not even for a moment)."""
    secrets_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(secrets_dir, 0o700)
    path = secrets_dir / PASSWORD_FILE
    if not path.is_file():
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(secrets.token_urlsafe(18) + "\n")
        os.replace(tmp, path)
    os.chmod(path, 0o600)
    return path


def read_password(path: Path) -> str:
    return path.read_text(encoding="utf-8").strip()


def password_matches(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def sign_in(session: MutableMapping[str, Any], reviewer: str) -> None:
    session.clear()
    session["reviewer"] = reviewer
    session["csrf"] = secrets.token_urlsafe(24)
    session["seen"] = time.time()


def reviewer_of(session: MutableMapping[str, Any], max_idle_s: float) -> str | None:
    """The signed-in reviewer, or None (and the session cleared) when there is none or it has expired."""
    who = session.get("reviewer")
    seen = session.get("seen")
    if not who or not isinstance(seen, (int, float)) or time.time() - seen > max_idle_s:
        session.clear()
        return None
    session["seen"] = time.time()
    return str(who)


def csrf_ok(session: MutableMapping[str, Any], token: str | None) -> bool:
    expected = session.get("csrf")
    return bool(expected and token) and hmac.compare_digest(str(expected), str(token))


def valid_reviewer_name(name: str) -> bool:
    """A reviewer name goes into lexicon rows and the audit log: short, printable, no tabs or newlines."""
    name = name.strip()
    return 0 < len(name) <= 64 and all(c.isprintable() and c not in "\t\r\n" for c in name)
