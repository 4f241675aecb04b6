"""The deployment checks' tools, built or installed by the tests themselves when missing (never by hand):
kustomize with ``go install`` through the Go module proxy, checkov with pip into its own virtualenv (its pinned
dependencies would fight the project's). Both land in ``.tools/`` (git-ignored) and are reused afterwards. A tool
that cannot be built fails the tests loudly; nothing is skipped."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from extractor.config import REPO_ROOT

TOOLS = REPO_ROOT / ".tools"
KUSTOMIZE = ("sigs.k8s.io/kustomize/kustomize/v5", "v5.7.1")
CHECKOV_VERSION = "3.3.30"
OVERLAYS = REPO_ROOT / "deploy" / "k8s" / "overlays"


def _run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(cmd, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    if out.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}",
                    pytrace=False)
    return out


@pytest.fixture(scope="session")
def kustomize() -> Path:
    exe = TOOLS / "bin" / "kustomize"
    stamp = TOOLS / "bin" / f".kustomize-{KUSTOMIZE[1]}"
    if not (exe.is_file() and stamp.is_file()):
        go = shutil.which("go")
        if go is None:
            pytest.fail("`go` is needed to build kustomize (Go 1.22+, see README Requirements)", pytrace=False)
        env = {**os.environ, "GOBIN": str(TOOLS / "bin"), "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}
        _run([go, "install", f"{KUSTOMIZE[0]}@{KUSTOMIZE[1]}"], env=env, timeout=1800)
        stamp.touch()
    return exe


@pytest.fixture(scope="session")
def checkov() -> Path:
    venv = TOOLS / "checkov"
    exe = venv / "bin" / "checkov"
    stamp = venv / f".checkov-{CHECKOV_VERSION}"
    if not (exe.is_file() and stamp.is_file()):
        _run([sys.executable, "-m", "venv", "--clear", str(venv)], timeout=300)
        _run([str(venv / "bin" / "pip"), "install", "-q", f"checkov=={CHECKOV_VERSION}"], timeout=1800)
        stamp.touch()
    return exe


def build(kustomize: Path, overlay: str) -> list[dict]:
    out = _run([str(kustomize), "build", str(OVERLAYS / overlay)], timeout=120)
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.fixture(scope="session")
def rendered(kustomize: Path) -> dict[str, list[dict]]:
    return {name: build(kustomize, name) for name in ("local", "gke")}
