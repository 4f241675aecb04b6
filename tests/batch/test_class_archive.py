"""The class-data-sharing archive of the local Spark driver's JVM (extractor.batch.class_archive)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from extractor.batch import class_archive
from extractor.config import REPO_ROOT


def test_option_maps_the_archive_only_when_it_exists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(class_archive.ENV, str(tmp_path))
    assert class_archive.jvm_option() == ""  # none yet: the JVM starts as before
    path = class_archive.archive_path()
    assert path is not None and path.parent == tmp_path and path.name.startswith("spark-")
    path.write_bytes(b"x")
    assert class_archive.jvm_option() == f"-XX:SharedArchiveFile={path}"


def test_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(class_archive.ENV, "off")
    assert class_archive.archive_dir() is None
    assert class_archive.jvm_option() == "" and class_archive.build() is None


def test_key_follows_the_spark_and_java_in_use(monkeypatch: pytest.MonkeyPatch) -> None:
    key = class_archive.archive_key()
    assert key == class_archive.archive_key() and len(key) == 16
    with monkeypatch.context() as mp:
        mp.setenv("JAVA_HOME", "/nonexistent/jdk")  # another Java: another archive
        assert class_archive.archive_key() != key
    assert class_archive.archive_key() == key
    # another install of the same PySpark (a fresh clone's virtual environment): another archive, because the
    # JVM refuses an archive written for another class path (found by a fresh clone's tests)
    monkeypatch.setattr(class_archive, "_jars_dir", lambda: Path("/elsewhere/pyspark/jars"))
    assert class_archive.archive_key() != key


def test_archives_of_installs_that_are_gone_are_pruned(tmp_path: Path) -> None:
    for name, jars in (("spark-a", tmp_path / "gone" / "jars"), ("spark-b", tmp_path)):
        (tmp_path / f"{name}.jsa").write_bytes(b"x")
        (tmp_path / f"{name}.json").write_text(json.dumps({"jars": str(jars)}))
    assert class_archive.prune(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spark-b.jsa", "spark-b.json"]


def test_default_folder_is_the_user_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(class_archive.ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert class_archive.archive_dir() == tmp_path / "clinical-extractor" / "spark-cds"


_MAPPED = """
from pathlib import Path
from extractor.batch import class_archive
from extractor.batch.backfill import spark_session
spark = spark_session("local[1]", conf={"spark.ui.enabled": "false"})
pid = spark._jvm.java.lang.ProcessHandle.current().pid()
print("MAPPED", str(class_archive.archive_path()) in Path(f"/proc/{pid}/maps").read_text())
spark.stop()
"""


@pytest.mark.slow
def test_a_local_session_maps_the_archive_its_builder_wrote() -> None:
    """``make venv`` writes the archive (this writes it when missing, once per Spark and Java); a new session's
    JVM then maps it: its memory map holds the file."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env.pop(class_archive.ENV, None)
    built = subprocess.run([sys.executable, "-m", "extractor.batch.class_archive"], capture_output=True, text=True,
                           timeout=600, env=env, cwd=REPO_ROOT)
    assert built.returncode == 0 and "class archive: /" in built.stdout, built.stdout + built.stderr[-2000:]
    run = subprocess.run([sys.executable, "-c", _MAPPED], capture_output=True, text=True, timeout=600, env=env,
                         cwd=REPO_ROOT)
    assert "MAPPED True" in run.stdout, run.stdout + run.stderr[-2000:]
