"""One storage layer for ``gs://``, ``file://`` and ``s3://`` URLs, through fsspec (gcsfs for Google Cloud Storage).

``filesystem(url, settings)`` gives an fsspec filesystem and the path inside it. For ``gs://`` it is gcsfs's plain
``GCSFileSystem``: since gcsfs 2026.x the class fsspec registers for ``gs`` first probes each bucket's type
(hierarchical / zonal) over gRPC, which against an emulator waits 60 s for a timeout before it falls back; the
archive never needs those bucket types. An emulator is used when ``settings.gcs_endpoint`` or
``STORAGE_EMULATOR_HOST`` is set (anonymous); otherwise Application Default Credentials (Workload Identity on
GKE). ``s3://`` needs the ``s3fs`` package.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from extractor.config import Settings


class StorageError(RuntimeError):
    """The storage cannot be used: a missing bucket, no credentials, an unknown scheme (the message says which)."""


def gcs_endpoint(settings: Settings) -> str | None:
    return settings.gcs_endpoint or os.environ.get("STORAGE_EMULATOR_HOST") or None


def filesystem(url: str, settings: Settings) -> tuple[Any, str]:
    """(fsspec filesystem, path inside it) for ``url``."""
    parts = urlsplit(url)
    scheme = parts.scheme or "file"
    if scheme == "gs":
        from gcsfs.core import GCSFileSystem  # the plain class, see the module doc

        endpoint = gcs_endpoint(settings)
        kwargs: dict[str, Any] = (
            {"endpoint_url": endpoint, "token": "anon"} if endpoint else {"token": "google_default"}
        )
        if settings.gcs_project:
            kwargs["project"] = settings.gcs_project
        try:
            fs = GCSFileSystem(**kwargs)
        except Exception as exc:  # noqa: BLE001 - no credentials found, a bad token file
            raise StorageError(f"cannot use Google Cloud Storage for {url}: {exc}") from None
        return fs, f"{parts.netloc}{parts.path}".rstrip("/")
    if scheme == "s3":
        try:
            import fsspec

            return fsspec.filesystem("s3"), f"{parts.netloc}{parts.path}".rstrip("/")
        except ImportError:
            raise StorageError("s3:// needs the s3fs package: pip install s3fs") from None
    if scheme == "file":
        import fsspec

        return fsspec.filesystem("file"), (parts.path or url).rstrip("/") or "/"
    raise StorageError(f"{url}: unknown storage scheme {scheme!r} (use gs://, file:// or s3://)")


def check_writable(fs: Any, root: str) -> None:
    """Fail early with a clear message when the bucket (or folder) is missing or cannot be listed."""
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    if "file" in protocols or "local" in protocols:
        fs.makedirs(root, exist_ok=True)
        return
    bucket = root.split("/", 1)[0]
    try:
        fs.ls(bucket)
    except FileNotFoundError:
        raise StorageError(f"bucket {bucket!r} does not exist (create it, or set EXTRACTOR_ARCHIVE_URL)") from None
    except Exception as exc:  # noqa: BLE001 - credentials refused, emulator down, network
        raise StorageError(f"cannot list bucket {bucket!r}: {type(exc).__name__}: {exc}") from None
