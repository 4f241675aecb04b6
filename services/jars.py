"""The Kafka, Connect and connector jars, copied from Maven Central by ``mvn`` (cached in ~/.m2).

services/pom.xml lists them; the copies live in the data dir and are stamped with a hash of the pom, so
a changed pom (new version) re-copies and an unchanged one is never touched again.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import time
from pathlib import Path

from services.config import POM, ServiceConfig
from services.process import require_tool, run_checked

log = logging.getLogger(__name__)

CONNECTOR_ARTIFACT = "mongo-kafka-connect"
STAMP = ".installed"
# our credential provider for the connector (see the file's comment), compiled into the connector's plugin folder
CREDENTIAL_SOURCE = (Path(__file__).resolve().parent.parent / "connectors" / "credentials"
                     / "ScramFileCredentialProvider.java")
CREDENTIAL_JAR = "clinical-extractor-credentials.jar"
CREDENTIAL_CLASS = "org.clinicalextractor.connect.ScramFileCredentialProvider"


def kafka_lib_dir(cfg: ServiceConfig) -> Path:
    return cfg.data_dir / "kafka" / "lib"


def plugin_path(cfg: ServiceConfig) -> Path:
    """The folder that CONTAINS the connector's own folder (Connect's ``plugin.path``)."""
    return cfg.data_dir / "connect" / "plugins"


def _pom_hash() -> str:
    return hashlib.sha256(POM.read_bytes()).hexdigest()[:16]


def _installed(target: Path) -> bool:
    stamp = target / STAMP
    return stamp.is_file() and stamp.read_text().strip() == _pom_hash()


def _copy(target: Path, selector: str) -> None:
    """``mvn dependency:copy-dependencies`` into a fresh folder, then swap it in (no half-filled dirs)."""
    mvn = require_tool("mvn")
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    run_checked(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            selector,
            f"-DoutputDirectory={tmp}",
        ],
        what="copying jars with Maven",
    )
    if not any(tmp.glob("*.jar")):
        raise RuntimeError(f"mvn copied no jars into {tmp}")
    (tmp / STAMP).write_text(_pom_hash() + "\n")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


def _source_hash() -> str:
    return hashlib.sha256(CREDENTIAL_SOURCE.read_bytes()).hexdigest()[:16]


def ensure_credential_provider(cfg: ServiceConfig) -> None:
    """javac the credential provider against the connector jar into the connector's plugin folder (its class
    loader is the one that looks the provider up)."""
    plugin = plugin_path(cfg) / CONNECTOR_ARTIFACT
    stamp = plugin / (CREDENTIAL_JAR + ".source")
    if (plugin / CREDENTIAL_JAR).is_file() and stamp.is_file() and stamp.read_text().strip() == _source_hash():
        return
    javac, jar = require_tool("javac"), require_tool("jar")
    connector_jar = next(plugin.glob(f"{CONNECTOR_ARTIFACT}-*.jar"))
    classes = plugin.parent / "credentials-classes"
    shutil.rmtree(classes, ignore_errors=True)
    run_checked([javac, "--release", "17", "-d", str(classes), "-cp", str(connector_jar), str(CREDENTIAL_SOURCE)],
                "compiling the connector's credential provider")
    run_checked([jar, "cf", str(plugin / CREDENTIAL_JAR), "-C", str(classes), "."], "packing the credential provider")
    shutil.rmtree(classes, ignore_errors=True)
    stamp.write_text(_source_hash() + "\n")


def ensure_jars(cfg: ServiceConfig) -> None:
    """Broker/Connect classpath and the shaded connector in its plugin folder; no-op when up to date."""
    lib = kafka_lib_dir(cfg)
    plugin = plugin_path(cfg) / CONNECTOR_ARTIFACT
    if _installed(lib) and _installed(plugin):
        ensure_credential_provider(cfg)
        return
    t0 = time.monotonic()
    log.info("installing Kafka/Connect jars with Maven into %s (first run only)", lib.parent.parent)
    if not _installed(lib):
        _copy(lib, f"-DexcludeArtifactIds={CONNECTOR_ARTIFACT}")
    if not _installed(plugin):
        _copy(plugin, f"-DincludeArtifactIds={CONNECTOR_ARTIFACT}")
    ensure_credential_provider(cfg)
    log.info("jars installed in %.1fs", time.monotonic() - t0)


LOG4J2 = """\
# written by python -m services; console goes to the service's log file
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
logger.reflections.name = org.reflections
logger.reflections.level = ERROR
"""


def log4j2_file(cfg: ServiceConfig) -> Path:
    path = cfg.data_dir / "kafka" / "log4j2.properties"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or path.read_text() != LOG4J2:
        path.write_text(LOG4J2)
    return path


def java_argv(java: str, cfg: ServiceConfig, heap_max: str = "512m") -> list[str]:
    return [
        java,
        "-Xms128m",
        f"-Xmx{heap_max}",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={log4j2_file(cfg)}",
        "-cp",
        f"{kafka_lib_dir(cfg)}/*",
    ]
