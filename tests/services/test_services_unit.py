"""services/ without servers: credentials files, URI redaction, the PostgreSQL settings that keep patient text out
of its log, source archives checked by content, and the extractor's settings picking up the local URI."""

from __future__ import annotations

import io
import stat
import tarfile
from pathlib import Path

import pytest

from services import postgres, secrets
from services.config import ServiceConfig
from services.errors import ServiceError


@pytest.fixture
def cfg(tmp_path: Path) -> ServiceConfig:
    return ServiceConfig(data_dir=tmp_path / "svc", mongo_port=27999, postgres_port=5999)


def test_credentials_are_generated_once_and_private(cfg: ServiceConfig) -> None:
    first = secrets.mongo_credentials(cfg)
    assert first == secrets.mongo_credentials(cfg)
    assert len(first["password"]) >= 24
    secrets.write_client_files(cfg)
    d = cfg.data_dir / "secrets"
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    for f in d.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    uri = (d / "mongo.uri").read_text().strip()
    assert uri == secrets.mongo_uri(cfg) and first["password"] in uri and ":27999/" in uri
    props = (d / "connect-secrets.properties").read_text()
    assert f"mongo.password={first['password']}" in props


def test_redact_uri_hides_the_password() -> None:
    assert secrets.redact_uri("mongodb://u:p%40ss@h:1/?x=1") == "mongodb://u:****@h:1/?x=1"
    assert secrets.redact_uri("mongodb://h:1") == "mongodb://h:1"


def test_postgres_settings_never_log_statements(cfg: ServiceConfig) -> None:
    conf = postgres._conf(cfg)
    for line in ("log_statement = 'none'", "log_min_error_statement = panic", "port = 5999",
                 "listen_addresses = '127.0.0.1'", "password_encryption = 'scram-sha-256'"):
        assert line in conf
    assert "trust" not in postgres.HBA.split("host", 1)[1]  # TCP always needs a password


def _tarball(path: Path, files: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


def test_archive_is_checked_by_content(cfg: ServiceConfig, tmp_path: Path, monkeypatch) -> None:
    vendor = tmp_path / "vendor"
    vendor.mkdir()
    monkeypatch.setenv("SERVICES_VENDOR_DIR", str(vendor))
    arch = postgres.Archive("thing-1.0.tar.gz", "https://invalid.example/thing.tar.gz", "0" * 64, "thing.control")
    _tarball(vendor / arch.file, {"thing-1.0/thing.control": b"x", "thing-1.0/src/a.c": b"int a;"})
    out = arch.extract(cfg, tmp_path / "src" / "thing")
    assert (out / "src" / "a.c").read_bytes() == b"int a;"
    wrong = postgres.Archive("other.tar.gz", "https://invalid.example/o.tar.gz", "0" * 64, "other.control")
    _tarball(vendor / wrong.file, {"other/README": b"not it"})
    with pytest.raises(ServiceError, match="does not look like"):
        wrong.extract(cfg, tmp_path / "src" / "other")


def test_extractor_settings_read_the_local_uri_file(tmp_path: Path, monkeypatch) -> None:
    from extractor.config import load_settings

    for k in ("EXTRACTOR_MONGO_URI", "EXTRACTOR_MONGO_URI_FILE"):
        monkeypatch.delenv(k, raising=False)
    f = tmp_path / "mongo.uri"
    f.write_text("mongodb://u:pw-Qx7zKv@127.0.0.1:27017/\n")  # a password no setting name or path contains
    s = load_settings(mongo_uri_file=f)
    assert s.mongo_uri.get_secret_value() == "mongodb://u:pw-Qx7zKv@127.0.0.1:27017/"
    assert "Qx7zKv" not in str(s.redacted()) and "Qx7zKv" not in repr(s)
    assert load_settings(mongo_uri_file=f, mongo_uri="mongodb://other:1").mongo_uri.get_secret_value() == (
        "mongodb://other:1")
    with pytest.raises(ValueError, match="does not exist"):
        load_settings(mongo_uri_file=tmp_path / "missing")


def test_cluster_moves_out_of_a_folder_the_postgres_user_cannot_enter(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(postgres, "os_user", lambda: "postgres")
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    cfg = ServiceConfig(data_dir=private / "svc")
    root = postgres.cluster_root(cfg)
    assert str(root).startswith("/var/lib/clinical-extractor/pg-") and postgres.data_dir(cfg) == root / "data"
    assert postgres.cluster_root(ServiceConfig(data_dir=private / "other")) != root  # one cluster per checkout
    private.chmod(0o755)
    tmp_path.chmod(0o755)
    if all(p.stat().st_mode & 0o001 for p in private.parents):
        assert postgres.cluster_root(cfg) == private / "svc" / "postgres"


def test_apt_get_runs_one_at_a_time_and_waits_for_dpkgs_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    """`services up` installs PostgreSQL's packages and Prometheus side by side: on a fresh machine the second
    apt-get failed at once on dpkg's lock ("held by process ... (apt-get)"). They now queue, and wait for an apt
    outside this process instead of failing."""
    import threading
    import time

    from services import process

    running, overlaps, calls = [0], [0], []
    guard = threading.Lock()

    def fake_run_checked(argv: list[str], what: str, env: dict[str, str] | None = None, **_: object) -> str:
        with guard:
            running[0] += 1
            overlaps[0] = max(overlaps[0], running[0])
            calls.append((argv, env))
        time.sleep(0.05)
        with guard:
            running[0] -= 1
        return ""

    monkeypatch.setattr(process, "run_checked", fake_run_checked)
    threads = [threading.Thread(target=process.apt_get, args=(["install", "-y", f"pkg{i}"], "apt-get install"))
               for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps[0] == 1
    assert len(calls) == 4
    for argv, env in calls:
        assert argv[:3] == ["apt-get", "-o", f"DPkg::Lock::Timeout={process.APT_LOCK_TIMEOUT_S}"]
        assert env is not None and env["DEBIAN_FRONTEND"] == "noninteractive"
