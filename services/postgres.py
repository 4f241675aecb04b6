"""PostgreSQL 15 with the DocumentDB extension (FerretDB's fork) and pgvector: the storage under FerretDB 2.

First run (each step is skipped once done, and stamped under ``.services/``):

1. Debian packages (PostgreSQL 15 server and headers, pg_cron, PostGIS, RUM, libbson, PCRE2, the Intel decimal
   library): installed with apt-get when this runs as root (``SERVICES_APT_INSTALL=0`` turns that off), otherwise a
   clear error naming the command to run. An already installed ``postgresql-15`` is kept at its version.
2. pgvector 0.8.0 and DocumentDB 0.107-0 built with PGXS from their source archives: ``../shared/vendor/`` when it
   is there (``SERVICES_VENDOR_DIR`` names another folder), else downloaded once from their upstream releases
   (GitHub) into ``.services/downloads/``. Debian's packages need three workarounds, all explained below.
3. A cluster of our own in ``.services/postgres/data`` (run as the ``postgres`` OS user when we are root: the
   server refuses to run as root), on 127.0.0.1 with its own port and a socket dir only its owner can enter.
   Local socket connections are trusted (only ``postgres`` and root reach the socket); TCP needs a password
   (scram-sha-256). Statements are never logged, not even failing ones: they would carry patient text.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import pwd
import shutil
import subprocess
import tarfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from services.config import HOST, REPO_ROOT, ServiceConfig
from services.errors import ServiceError
from services.process import ManagedProcess, apt_get, run_checked

log = logging.getLogger(__name__)

NAME = "postgres"
MARKER = "postgres"
PGMAJOR = 15
PGBIN = Path(f"/usr/lib/postgresql/{PGMAJOR}/bin")
PG_CONFIG = PGBIN / "pg_config"
START_TIMEOUT_S = 60.0
# what DocumentDB and its build need (the list FerretDB's own packaging uses, with Debian 12's names)
APT_PACKAGES = (
    f"postgresql-{PGMAJOR}", f"postgresql-client-{PGMAJOR}", f"postgresql-server-dev-{PGMAJOR}", "libpq-dev",
    f"postgresql-{PGMAJOR}-cron", f"postgresql-{PGMAJOR}-postgis-3", f"postgresql-{PGMAJOR}-rum",
    "libbson-dev", "libpcre2-dev", "libintelrdfpmath-dev", "libicu-dev", "libkrb5-dev",
    "build-essential", "pkg-config",
)
_PINNED_WITH_SERVER = (f"postgresql-client-{PGMAJOR}", f"postgresql-server-dev-{PGMAJOR}", "libpq-dev", "libpq5")


@dataclass(frozen=True)
class Archive:
    """A source archive no registry serves: the vendored copy, or its upstream release."""

    file: str
    url: str
    sha256: str  # of the vendored copy; an upstream download may be packed differently (see fetch)
    check: str  # a path inside the archive (after its top folder) that proves it is the right source

    def fetch(self, cfg: ServiceConfig) -> Path:
        for d in vendor_dirs():
            p = d / self.file
            if p.is_file():
                return p
        dest = cfg.data_dir / "downloads" / self.file
        if not dest.is_file():
            log.info("%s not found in %s; downloading the upstream release %s", self.file,
                     ", ".join(map(str, vendor_dirs())) or "(no vendor dir)", self.url)
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_suffix(".part")
            try:
                with urllib.request.urlopen(self.url, timeout=60) as r, open(tmp, "wb") as fh:  # noqa: S310
                    shutil.copyfileobj(r, fh)
            except OSError as exc:
                raise ServiceError(
                    f"cannot get {self.file}: not in a vendor dir and the download of {self.url} failed ({exc}). "
                    f"Put the archive in ../shared/vendor/ or set SERVICES_VENDOR_DIR to its folder."
                ) from exc
            tmp.rename(dest)
        digest = hashlib.sha256(dest.read_bytes()).hexdigest()
        if digest != self.sha256:  # GitHub may re-pack an archive: the content check in extract() decides
            log.info("%s: sha256 %s differs from the vendored copy's; checking its content instead", dest, digest)
        return dest

    def extract(self, cfg: ServiceConfig, into: Path) -> Path:
        if (into / self.check).exists():
            return into
        src = self.fetch(cfg)
        tmp = into.with_name(into.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        with tarfile.open(src) as tf:
            tf.extractall(tmp, filter="data")
        tops = [p for p in tmp.iterdir() if p.is_dir()]
        if len(tops) != 1 or not (tops[0] / self.check).exists():
            raise ServiceError(f"{src} does not look like the expected source ({self.check} missing)")
        shutil.rmtree(into, ignore_errors=True)
        tops[0].rename(into)
        shutil.rmtree(tmp, ignore_errors=True)
        return into


# FerretDB's fork of DocumentDB, `ferretdb` branch at 3f80da90 (extension 0.107-0, what FerretDB v2.7.0 was
# developed against; MIT). The upstream download of the same commit is GitHub's archive of it.
DOCUMENTDB = Archive(
    "documentdb-ferretdb-3f80da90.tar.gz",
    "https://github.com/FerretDB/documentdb/archive/3f80da90a9e0b04f214183aa656c4fb0b4bc31e4.tar.gz",
    "b2f2bf931e7d6037005e11410b8e06c7274de06bda79f3f3b7567aaecb683d9e",
    "pg_documentdb/documentdb.control",
)
PGVECTOR = Archive(
    "pgvector-0.8.0.tar.gz",
    "https://github.com/pgvector/pgvector/archive/refs/tags/v0.8.0.tar.gz",
    "f735d37c1f8a32a0c46f29db63860bdc1ed06a423d4280767afbd38f1fe58778",
    "vector.control",
)
BUILD_VERSION = "documentdb-0.107-0+3f80da90;pgvector-0.8.0"


def vendor_dirs() -> list[Path]:
    dirs = [Path(os.environ["SERVICES_VENDOR_DIR"])] if os.environ.get("SERVICES_VENDOR_DIR") else []
    dirs.append(REPO_ROOT.parent / "shared" / "vendor")
    return [d for d in dirs if d.is_dir()]


@functools.cache
def process(cfg: ServiceConfig) -> ManagedProcess:
    return ManagedProcess(NAME, cfg, MARKER, stop_signal="SIGINT")  # SIGINT = fast shutdown (SIGTERM waits)


def cluster_root(cfg: ServiceConfig) -> Path:
    """Where the cluster lives: ``<data dir>/postgres``, unless the server's OS user cannot walk down to it (a
    checkout under /root, say): then a folder of its own under /var/lib/clinical-extractor, named after the data
    dir, so that every checkout keeps its own cluster."""
    own = cfg.data_dir / "postgres"
    if _traversable(own):
        return own
    import hashlib

    return Path("/var/lib/clinical-extractor") / f"pg-{hashlib.sha256(str(cfg.data_dir).encode()).hexdigest()[:12]}"


def data_dir(cfg: ServiceConfig) -> Path:
    return cluster_root(cfg) / "data"


def socket_dir(cfg: ServiceConfig) -> Path:
    return cluster_root(cfg) / "sock"


def os_user() -> str | None:
    """The OS user the server runs as: ``postgres`` when we are root, else ourselves (None)."""
    return "postgres" if os.geteuid() == 0 else None


# --------------------------------------------------------------------------------------------- packages


def missing_packages() -> list[str]:
    if not shutil.which("dpkg-query"):
        raise ServiceError(
            "PostgreSQL with DocumentDB is built from Debian/Ubuntu packages here (dpkg-query not found). On other "
            f"systems install PostgreSQL {PGMAJOR} with its server headers, pg_cron, PostGIS 3, RUM, libbson, PCRE2 "
            "and the Intel decimal floating-point library, or use `docker compose up -d` (real MongoDB)."
        )
    res = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${db:Status-Abbrev}\n", *APT_PACKAGES],
                         capture_output=True, text=True, check=False)
    installed = {ln.split()[0] for ln in res.stdout.splitlines() if len(ln.split()) > 1 and ln.split()[1] == "ii"}
    return [p for p in APT_PACKAGES if p not in installed]


def _installed_version(pkg: str) -> str | None:
    res = subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Abbrev} ${Version}", pkg],
                         capture_output=True, text=True, check=False)
    parts = res.stdout.split()
    return parts[1] if res.returncode == 0 and len(parts) == 2 and parts[0] == "ii" else None


def ensure_packages() -> None:
    missing = missing_packages()
    if not missing:
        return
    command = "apt-get update && apt-get install -y --no-install-recommends " + " ".join(missing)
    if os.geteuid() != 0 or os.environ.get("SERVICES_APT_INSTALL", "1") == "0":
        raise ServiceError(f"missing Debian packages for PostgreSQL + DocumentDB: {' '.join(missing)}.\n"
                           f"Install them with:  sudo sh -c '{command}'")
    pkgs = list(missing)
    server = _installed_version(f"postgresql-{PGMAJOR}")
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    log.info("installing Debian packages: %s (apt-get, about half a minute)", " ".join(pkgs))
    apt_get(["update", "-q"], "apt-get update", env=env)
    if server:  # keep a present server at its version: headers and client must match it, and RUM must fit it
        pkgs = [f"{p}={server}" if p in _PINNED_WITH_SERVER else p for p in pkgs]
        if f"postgresql-{PGMAJOR}-rum" in pkgs:
            pkgs.remove(f"postgresql-{PGMAJOR}-rum")
            pkgs.append(f"postgresql-{PGMAJOR}-rum={_fitting_rum(pkgs)}")
    apt_get(["install", "-y", "-q", "--no-install-recommends", *pkgs], "apt-get install", env=env)
    still = missing_packages()
    if still:
        raise ServiceError(f"apt-get finished but these packages are still missing: {' '.join(still)}")


def _fitting_rum(others: list[str]) -> str:
    """Newest postgresql-15-rum that installs beside the present server (bookworm-security's needs a newer one)."""
    out = run_checked(["apt-cache", "madison", f"postgresql-{PGMAJOR}-rum"], "apt-cache madison")
    for line in out.splitlines():
        version = line.split("|")[1].strip()
        trial = subprocess.run(["apt-get", "install", "-s", "--no-install-recommends", *others,
                                f"postgresql-{PGMAJOR}-rum={version}"], capture_output=True, check=False)
        if trial.returncode == 0:
            return version
    raise ServiceError(f"no postgresql-{PGMAJOR}-rum version fits the installed postgresql-{PGMAJOR}")


# --------------------------------------------------------------------------------------------- extensions


def _stamp(cfg: ServiceConfig) -> Path:
    return cfg.data_dir / "postgres" / "extensions.version"


def _pg(var: str) -> Path:
    return Path(run_checked([str(PG_CONFIG), f"--{var}"], "pg_config").strip())


def extensions_installed(cfg: ServiceConfig) -> bool:
    if not (_stamp(cfg).is_file() and _stamp(cfg).read_text().strip() == BUILD_VERSION and PG_CONFIG.is_file()):
        return False
    lib = _pg("pkglibdir")
    return all((lib / f).is_file() for f in ("vector.so", "pg_documentdb_core.so", "pg_documentdb.so"))


def ensure_extensions(cfg: ServiceConfig) -> None:
    """Build and install pgvector and DocumentDB once (PGXS, into PostgreSQL's own lib and share dirs)."""
    if extensions_installed(cfg):
        return
    t0 = time.monotonic()
    src = cfg.data_dir / "postgres" / "src"
    jobs = str(max(os.cpu_count() or 1, 1))
    # with_llvm=no: no clang bitcode for JIT inlining (halves the build; the .so files are the same)
    common = [f"PG_CONFIG={PG_CONFIG}", "with_llvm=no"]
    vec = PGVECTOR.extract(cfg, src / "pgvector")
    run_checked(["make", "-C", str(vec), "-j", jobs, *common], "building pgvector")
    run_checked(["make", "-C", str(vec), "install", *common], "installing pgvector")

    dd = DOCUMENTDB.extract(cfg, src / "documentdb")
    # Debian ships no pkg-config file for the Intel decimal library; the fork's build looks one up
    pc_dir = cfg.data_dir / "postgres" / "pkgconfig"
    pc_dir.mkdir(parents=True, exist_ok=True)
    multiarch = run_checked(["gcc", "-print-multiarch"], "gcc").strip()
    (pc_dir / "intelmathlib.pc").write_text(
        f"libdir=/usr/lib/{multiarch}\n\nName: intelmathlib\nDescription: Intel decimal floating point "
        "(Debian libintelrdfpmath-dev)\nVersion: 2.0u2\nCflags:\nLibs: -L${libdir} -lbidgcc000\n"
    )
    env = {"PKG_CONFIG_PATH": f"{pc_dir}:{os.environ.get('PKG_CONFIG_PATH', '')}".rstrip(":")}
    # Debian's libbson 1.23 predates binary subtype 8 ("sensitive", libbson >= 1.25) that DocumentDB uses:
    # give it the spec's value, and keep the resulting "not in enum" switch warning a warning
    inc = run_checked(["pkg-config", "--variable=includedir", "libbson-1.0"], "pkg-config libbson", env=env).strip()
    copt = ""
    if "BSON_SUBTYPE_SENSITIVE" not in (Path(inc) / "libbson-1.0" / "bson" / "bson-types.h").read_text():
        copt = "-DBSON_SUBTYPE_SENSITIVE=0x08 -Wno-error=switch"
    mk = [*common, f"COPT={copt}"]
    for part in ("pg_documentdb_core", "pg_documentdb"):  # core first: pg_documentdb links to it
        run_checked(["make", "-C", str(dd / part), "-j", jobs, *mk], f"building {part}", env=env)
        run_checked(["make", "-C", str(dd / part), "install", *mk], f"installing {part}", env=env)
    _stamp(cfg).write_text(BUILD_VERSION + "\n")
    shutil.rmtree(src, ignore_errors=True)
    log.info("pgvector + DocumentDB built and installed in %.1fs", time.monotonic() - t0)


def install(cfg: ServiceConfig) -> None:
    ensure_packages()
    ensure_extensions(cfg)


# --------------------------------------------------------------------------------------------- cluster

CONF_MARK = "# --- clinical-extractor (services/postgres.py) ---"


def _conf(cfg: ServiceConfig) -> str:
    return f"""{CONF_MARK}
listen_addresses = '{HOST}'
port = {cfg.postgres_port}
unix_socket_directories = '{socket_dir(cfg)}'
unix_socket_permissions = 0700
password_encryption = 'scram-sha-256'
shared_preload_libraries = 'pg_cron,pg_documentdb_core,pg_documentdb'
cron.database_name = 'postgres'
max_connections = 200
shared_buffers = 256MB
# durable acknowledged writes: the sink commits its Kafka offsets only after MongoDB (FerretDB -> here) has
# acknowledged the documents, so an acknowledged write must survive a crash (measured: `synchronous_commit = off`
# saved under 5 % of this server's CPU per document with the sink's bulk writes, not worth losing entries for)
synchronous_commit = on
# never write a statement or its parameters to the log (they would carry patient text), not even failing ones
log_statement = 'none'
log_min_error_statement = panic
log_min_duration_statement = -1
log_error_verbosity = terse
# DocumentDB settings from FerretDB's packaging (10-preload.sh)
documentdb.enableCompact = true
documentdb.enableLetAndCollationForQueryMatch = true
documentdb.enableNowSystemVariable = true
documentdb.enableSchemaValidation = true
documentdb.enableBypassDocumentValidation = true
documentdb.enableUserCrud = true
documentdb.maxUserLimit = 100
# indexes with DocumentDB's composite operator class (one ordered term per document for a compound index) instead
# of the single-path class (a term per path and value): measured with 20,000 of the pipeline's documents and the
# three query indexes, 0.19 -> 0.08 ms of this server's CPU per document written (no index: 0.025), the same
# plans (index scans on the same indexes) and the same results for 488 queries. Only new indexes get it: `services
# up` rebuilds the project's query indexes made before (manager.ensure_indexes)
documentdb.defaultUseCompositeOpClass = true
# Debian 12's pg_cron 1.4 has no "N seconds" schedules (pg_cron >= 1.5); 60 makes DocumentDB schedule its
# background index builds as '* * * * *', else CREATE EXTENSION fails. FerretDB 2.7 builds indexes
# non-concurrently, so it never waits for these jobs.
documentdb.indexBuildScheduleInSec = 60
# DocumentDB opens libpq connections back to the server (index builds, ...): over the private socket, where
# local connections are trusted, instead of its default host=localhost (TCP, which needs a password)
documentdb.localhost_connection_string = 'host={socket_dir(cfg)}'
"""


HBA = """# clinical-extractor: the socket dir is 0700 (only the server's OS user and root get in); TCP needs a password
local   all   all                  trust
host    all   all   127.0.0.1/32   scram-sha-256
"""


def _as_server_user(argv: list[str], what: str, stdin: str | None = None) -> str:
    user = os_user()
    res = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False, user=user, group=user,
                         extra_groups=[] if user else None, cwd="/")
    if res.returncode != 0:
        out = (res.stdout + res.stderr)[-3000:]
        raise ServiceError(f"{what} failed (exit {res.returncode}): {' '.join(argv)}\n{out}")
    return res.stdout


def _chown(path: Path) -> None:
    user = os_user()
    if user:
        pw = pwd.getpwnam(user)
        os.chown(path, pw.pw_uid, pw.pw_gid)


def _traversable(path: Path) -> bool:
    """Whether the server's OS user can walk down to ``path`` (always, when we are that user)."""
    if not os_user():
        return True
    return all(os.stat(parent).st_mode & 0o001 for parent in path.parents if parent.exists())


def init_cluster(cfg: ServiceConfig) -> bool:
    """initdb once; (re)write our settings and pg_hba.conf. True when the cluster was created now."""
    data = data_dir(cfg)
    root = data.parent
    if root != cfg.data_dir / "postgres":
        log.info("postgres: %s is not reachable by the postgres user; the cluster lives in %s", cfg.data_dir, root)
    root.mkdir(parents=True, exist_ok=True)
    _chown(root)
    created = False
    if not (data / "PG_VERSION").is_file():
        data.mkdir(mode=0o700, exist_ok=True)
        _chown(data)
        _as_server_user([str(PGBIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                         "--locale=C.UTF-8"], "initdb")
        created = True
    sock = socket_dir(cfg)
    sock.mkdir(mode=0o700, exist_ok=True)
    _chown(sock)
    conf = data / "postgresql.conf"
    text = conf.read_text()
    if CONF_MARK in text:
        text = text[: text.index(CONF_MARK)]
    conf.write_text(text + _conf(cfg))
    (data / "pg_hba.conf").write_text(HBA)
    return created


def start(cfg: ServiceConfig) -> int:
    proc = process(cfg)
    proc.check_port_free(cfg.postgres_port, "PostgreSQL", "SERVICES_POSTGRES_PORT")
    init_cluster(cfg)
    argv = [str(PGBIN / "postgres"), "-D", str(data_dir(cfg))]
    return proc.start(argv, cwd=data_dir(cfg), user=os_user())


def ready(cfg: ServiceConfig) -> bool:
    res = subprocess.run([str(PGBIN / "pg_isready"), "-h", str(socket_dir(cfg)), "-p", str(cfg.postgres_port),
                          "-U", "postgres", "-d", "postgres", "-t", "1"], capture_output=True, check=False)
    return res.returncode == 0


def wait(cfg: ServiceConfig) -> None:
    process(cfg).wait_ready(lambda: ready(cfg), START_TIMEOUT_S, f"PostgreSQL on {HOST}:{cfg.postgres_port}")
    setup_database(cfg)


def single_path_indexes(cfg: ServiceConfig, database: str, collection: str) -> list[str]:
    """Names of the collection's secondary indexes built with DocumentDB's older single-path operator class (before
    ``documentdb.defaultUseCompositeOpClass``); ``[]`` when the collection does not exist."""
    def literal(v: str) -> str:
        return "'" + v.replace("'", "''") + "'"

    out = psql(cfg, f"""
        SELECT (ci.index_spec).index_name
        FROM documentdb_api_catalog.collection_indexes ci
        JOIN documentdb_api_catalog.collections c USING (collection_id)
        JOIN pg_class i ON i.relname = 'documents_rum_index_' || ci.index_id
        WHERE c.database_name = {literal(database)} AND c.collection_name = {literal(collection)}
          AND pg_get_indexdef(i.oid) LIKE '%bson_rum_single_path_ops%'
        ORDER BY 1""", what="list the single-path indexes")
    return [line for line in out.splitlines() if line.strip()]


def psql(cfg: ServiceConfig, sql: str, *, what: str = "psql") -> str:
    """Run SQL as the superuser over the private socket (on stdin: a password never shows in a process list);
    returns unaligned tuples-only output."""
    return _as_server_user([str(PGBIN / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                            "-h", str(socket_dir(cfg)), "-p", str(cfg.postgres_port), "-U", "postgres",
                            "-d", "postgres"], what, stdin=sql)


def setup_database(cfg: ServiceConfig) -> None:
    """The DocumentDB extension and the login role FerretDB and its clients use (password from secrets)."""
    from services import secrets

    psql(cfg, "CREATE EXTENSION IF NOT EXISTS documentdb CASCADE", what="CREATE EXTENSION documentdb")
    cred = secrets.mongo_credentials(cfg)
    user = cred["user"]
    if not user.isidentifier():
        raise ServiceError(f"invalid database user name {user!r}")
    pw = cred["password"].replace("'", "''")
    exists = psql(cfg, f"SELECT 1 FROM pg_roles WHERE rolname = '{user}'").strip() == "1"
    verb = "ALTER" if exists else "CREATE"
    # the role owns what FerretDB creates for it; superuser because DocumentDB's API functions manage their own
    # catalog (a local test server: a production MongoDB is configured by its operators)
    psql(cfg, f"{verb} ROLE {user} WITH LOGIN SUPERUSER PASSWORD '{pw}'", what="create the database role")
