"""Object store: a local directory (file://) by default, S3/MinIO (s3://) via the minio client."""

from __future__ import annotations

import io
import logging
import os
import posixpath
import stat
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

from flts_streams.core.errors import InvalidInput, InvalidObjectKey, ObjectNotFound, ObjectTooLarge, TransientError
from flts_streams.core.settings import Settings

log = logging.getLogger(__name__)


def validate_key(key: str) -> str:
    """Reject absolute keys, traversal and empty segments; returns the key unchanged."""
    if not key or key.startswith("/") or "\\" in key or "\x00" in key:
        raise InvalidObjectKey(f"object key {key!r} must be a relative path without backslashes")
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts) or posixpath.normpath(key) != key:
        raise InvalidObjectKey(f"object key {key!r} may not contain '..', '.' or empty segments")
    return key


class ObjectStore(Protocol):
    """Minimal object store used by claims (read) and prediction logs (write)."""

    def get(self, bucket: str, key: str, max_bytes: int | None = None) -> bytes: ...

    def put(self, bucket: str, key: str, data: bytes) -> None: ...

    def list(self, bucket: str, prefix: str) -> list[str]: ...


class LocalStore:
    """Objects as files under ``root/<bucket>/<key>``.

    A key is checked lexically (validate_key), and the file or directory it is opened through is checked to lie
    inside its bucket (a symlink in the store could point anywhere). The check looks at the open descriptor
    (``/proc/self/fd``): one readlink, where resolving the path was ~33 us of lstat calls per object, 18% of the
    object thread in a claim burst (docs/BENCHMARKS.md); and what is checked is what is read or written.
    """

    def __init__(self, root: Path, fd_links: Path = Path("/proc/self/fd")) -> None:
        self.root = root.resolve()
        self.fd_links = fd_links  # where the OS names open descriptors; without it, paths are resolved

    def _path(self, bucket: str, key: str) -> Path:
        """The key's path, checked lexically only."""
        validate_key(bucket)
        return self.root / bucket / validate_key(key)

    def _check_inside(self, bucket: str, key: str, fd: int, opened: Path) -> None:
        """InvalidObjectKey unless ``fd`` (opened by ``opened``) lies inside the bucket."""
        try:
            real = Path(os.readlink(self.fd_links / str(fd)))
        except OSError:  # no /proc (e.g. macOS): resolve the path instead
            real = opened.resolve()
        if not real.is_relative_to(self.root / bucket):
            raise InvalidObjectKey(f"object key {key!r} escapes bucket {bucket!r}")

    def get(self, bucket: str, key: str, max_bytes: int | None = None) -> bytes:
        """Read an object (ObjectTooLarge above ``max_bytes``, before reading it)."""
        path = self._path(bucket, key)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise ObjectNotFound(f"object {bucket}/{key} does not exist") from exc
        try:
            self._check_inside(bucket, key, fd, path)
            status = os.fstat(fd)
            if stat.S_ISDIR(status.st_mode):
                raise ObjectNotFound(f"object {bucket}/{key} is a prefix, not an object")
            _check_size(bucket, key, status.st_size, max_bytes)
            with open(fd, "rb", closefd=False) as f:
                return f.read()
        finally:
            os.close(fd)

    def put(self, bucket: str, key: str, data: bytes) -> None:
        """Write a new object atomically (temp file + rename), both inside the directory checked to be in the bucket."""
        path = self._path(bucket, key)
        as_folder = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
        try:
            folder = os.open(path.parent, as_folder)
        except FileNotFoundError:  # a new folder: check what creating it would go through, then create it
            if not path.parent.resolve().is_relative_to(self.root / bucket):
                raise InvalidObjectKey(f"object key {key!r} escapes bucket {bucket!r}") from None
            path.parent.mkdir(parents=True, exist_ok=True)
            folder = os.open(path.parent, as_folder)
        try:
            self._check_inside(bucket, key, folder, path.parent)
            tmp = path.name + ".tmp"
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
            with open(os.open(tmp, flags, 0o666, dir_fd=folder), "wb") as f:
                f.write(data)
            os.replace(tmp, path.name, src_dir_fd=folder, dst_dir_fd=folder)
        finally:
            os.close(folder)

    def list(self, bucket: str, prefix: str) -> list[str]:
        """Keys under ``prefix`` (a folder path ending in /), sorted."""
        base = self._path(bucket, prefix.rstrip("/"))
        root = self.root / bucket
        if not base.resolve().is_relative_to(root):  # rglob does not follow symlinks below it, but would from here
            raise InvalidObjectKey(f"prefix {prefix!r} escapes bucket {bucket!r}")
        if not base.is_dir():
            return []
        return sorted(
            str(path.relative_to(root)) for path in base.rglob("*") if path.is_file() and path.suffix != ".tmp"
        )


class S3Store:
    """S3/MinIO through the minio client, with timeouts; transient failures raise TransientError."""

    def __init__(self, endpoint: str, settings: Settings) -> None:
        import urllib3
        from minio import Minio

        s = settings.storage
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=s.timeout_s, read=s.timeout_s),
            retries=urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=(500, 502, 503, 504)),
        )
        self.client = Minio(
            endpoint,
            access_key=s.access_key.get_secret_value() if s.access_key else None,
            secret_key=s.secret_key.get_secret_value() if s.secret_key else None,
            secure=s.secure,
            region=s.region,
            http_client=http,
        )

    def get(self, bucket: str, key: str, max_bytes: int | None = None) -> bytes:
        """Read an object (ObjectTooLarge above ``max_bytes``, judged by its Content-Length before reading)."""
        from minio.error import S3Error

        validate_key(key)
        try:
            response = self.client.get_object(bucket, key)
            try:
                _check_size(bucket, key, int(response.headers.get("Content-Length") or 0), max_bytes)
                return response.read()
            finally:
                response.close()
                response.release_conn()
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchBucket"):
                raise ObjectNotFound(f"object {bucket}/{key} does not exist") from exc
            raise TransientError(f"object store error reading {bucket}/{key}: {exc.code}") from exc
        except ObjectTooLarge:
            raise
        except Exception as exc:  # urllib3/network errors: retried by the caller
            raise TransientError(f"object store unreachable reading {bucket}/{key}: {type(exc).__name__}") from exc

    def put(self, bucket: str, key: str, data: bytes) -> None:
        """Write an object."""
        from minio.error import S3Error

        validate_key(key)
        try:
            self.client.put_object(bucket, key, io.BytesIO(data), len(data))
        except S3Error as exc:
            raise TransientError(f"object store error writing {bucket}/{key}: {exc.code}") from exc
        except Exception as exc:
            raise TransientError(f"object store unreachable writing {bucket}/{key}: {type(exc).__name__}") from exc

    def list(self, bucket: str, prefix: str) -> list[str]:
        """Keys under ``prefix``, sorted."""
        from minio.error import S3Error

        validate_key(prefix.rstrip("/"))
        try:
            return sorted(o.object_name for o in self.client.list_objects(bucket, prefix=prefix, recursive=True))
        except S3Error as exc:
            if exc.code == "NoSuchBucket":
                raise ObjectNotFound(f"bucket {bucket} does not exist") from exc
            raise TransientError(f"object store error listing {bucket}/{prefix}: {exc.code}") from exc
        except Exception as exc:
            raise TransientError(f"object store unreachable listing {bucket}/{prefix}: {type(exc).__name__}") from exc


def _check_size(bucket: str, key: str, size: int, max_bytes: int | None) -> None:
    if max_bytes is not None and size > max_bytes:
        raise ObjectTooLarge(
            f"object {bucket}/{key} is {size} bytes, above the {max_bytes}-byte limit "
            "(FLTS_STREAMING__OBJECT_MAX_BYTES)"
        )


def open_store(settings: Settings) -> ObjectStore:
    """The store named by settings (file:// or s3://host:port)."""
    url = urlparse(settings.storage_url)
    if url.scheme == "file":
        return LocalStore(Path(url.netloc + url.path))
    if url.scheme in ("s3", "minio"):
        return S3Store(url.netloc, settings)
    raise InvalidInput(f"unsupported storage url {settings.storage_url!r}: use file://DIR or s3://HOST:PORT")


def allowed_bucket(settings: Settings, bucket: str | None) -> str:
    """The claim's bucket if allowed, else the default; foreign buckets are refused."""
    allowed = set(settings.storage.allowed_buckets) | {settings.storage.bucket}
    chosen = bucket or settings.storage.bucket
    if chosen not in allowed:
        raise InvalidObjectKey(f"bucket {chosen!r} is not allowed; allowed: {sorted(allowed)}")
    return chosen
