"""MinIO/S3 object storage through the ``minio`` client, behind the :class:`ObjectStore` interface.

Traps designed around (issue 8):
- Presigned URLs are signed for the endpoint clients reach (``public_endpoint``), not the in-cluster host:
  a signature covers the host, so a URL rewritten afterwards is refused. A second client is built for the
  public endpoint with the region set, so signing never calls that endpoint (it may be unreachable from here).
- The client holds a urllib3 connection pool that is not safe across ``fork``: :func:`make_store` keeps one
  client per process (see :mod:`giqa.infra.storage.factory`).
- Large files go up in parts (``multipart_threshold_bytes``), so a 2 GB checkpoint neither sits in memory
  nor restarts from zero when one part fails.

Errors: every ``minio``/urllib3 exception becomes a :class:`StorageError` naming the key and the endpoint;
a server that does not answer or answers 5xx is ``retryable``.
"""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import urllib3
from minio import Minio
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError

from giqa.infra.storage.base import NotFound, ObjectInfo, StorageError, check_key
from giqa.ports import Health

MISSING_CODES = {"NoSuchKey", "NoSuchObject", "NotFound", "ResourceNotFound"}
MIN_PART = 5 * 1024 * 1024  # S3's smallest part (but the last)


def _http_client(timeout_s: float, secure: bool) -> urllib3.PoolManager:
    """Short connect timeout and few retries (the queue retries later, with backoff): a store that is down
    is an error in seconds, not after minio's default of five retries."""
    retries = urllib3.Retry(total=2, connect=1, backoff_factor=0.2, status_forcelist=(500, 502, 503, 504))
    extra: dict[str, Any] = {}
    if secure:
        import certifi

        extra = {"cert_reqs": "CERT_REQUIRED", "ca_certs": certifi.where()}
    timeout = urllib3.Timeout(connect=min(timeout_s, 5.0), read=timeout_s)
    return urllib3.PoolManager(timeout=timeout, retries=retries, maxsize=10, **extra)


class MinioObjectStore:
    def __init__(
        self,
        endpoint: str,
        *,
        bucket: str,
        access_key: str | None,
        secret_key: str | None,
        region: str = "us-east-1",
        public_endpoint: str | None = None,
        part_size: int = 16 * 1024 * 1024,
        presign_expiry_s: int = 900,
        timeout_s: float = 30.0,
    ) -> None:
        """``endpoint`` and ``public_endpoint`` are ``http(s)://host:port`` URLs."""
        if part_size < MIN_PART:
            raise ValueError(f"part size must be at least {MIN_PART} bytes (S3), got {part_size}")
        self.endpoint, self.bucket, self.part_size = endpoint, bucket, part_size
        self.public_endpoint = public_endpoint or endpoint
        self.presign_expiry_s = presign_expiry_s
        self._client = self._minio(endpoint, access_key, secret_key, region, timeout_s)
        self._public = self._minio(self.public_endpoint, access_key, secret_key, region, timeout_s)

    @staticmethod
    def _minio(url: str, access: str | None, secret: str | None, region: str, timeout_s: float) -> Minio:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
            raise ValueError(f"S3 endpoint must be http(s)://host:port without a path, got {url!r}")
        secure = parts.scheme == "https"
        return Minio(
            parts.netloc,
            access_key=access,
            secret_key=secret,
            secure=secure,
            region=region,  # with the region known, the client never asks the server for it
            http_client=_http_client(timeout_s, secure),
        )

    def __repr__(self) -> str:
        return f"MinioObjectStore({self.endpoint!r}, bucket={self.bucket!r})"

    def ensure_bucket(self) -> None:
        try:
            if not self._client.bucket_exists(self.bucket):
                self._client.make_bucket(self.bucket)
        except S3Error as exc:
            if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):  # another process won
                raise self._error("cannot create bucket", None, exc) from exc
        except (MinioException, urllib3.exceptions.HTTPError, ValueError) as exc:
            raise self._error("cannot create bucket", None, exc) from exc

    def put_bytes(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> None:
        check_key(key)
        part_size = self.part_size if len(data) > self.part_size else 0
        self._call(
            "cannot upload",
            key,
            self._client.put_object,
            self.bucket,
            key,
            io.BytesIO(data),
            len(data),
            content_type=content_type,
            part_size=part_size,
        )

    def put_file(self, key: str, path: str | Path, *, content_type: str = "application/octet-stream") -> None:
        """Upload a file; over ``part_size`` it goes up in parts of that size (multipart upload)."""
        check_key(key)
        if not Path(path).is_file():
            raise StorageError(f"cannot upload {key!r}: no file {path}", key=key)
        self._call(
            "cannot upload",
            key,
            self._client.fput_object,
            self.bucket,
            key,
            str(path),
            content_type=content_type,
            part_size=self.part_size,
        )

    def get_bytes(self, key: str) -> bytes:
        check_key(key)
        response = self._call("cannot read", key, self._client.get_object, self.bucket, key)
        try:
            return bytes(response.read())
        except urllib3.exceptions.HTTPError as exc:
            raise self._error("cannot read", key, exc) from exc
        finally:
            response.close()
            response.release_conn()

    def get_file(self, key: str, path: str | Path) -> None:
        check_key(key)
        self._call("cannot download", key, self._client.fget_object, self.bucket, key, str(path))

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except NotFound:
            return False
        return True

    def delete(self, key: str) -> None:
        check_key(key)
        self._call("cannot delete", key, self._client.remove_object, self.bucket, key)

    def list(self, prefix: str = "") -> list[str]:
        """Keys under ``prefix`` (a plain string prefix), sorted."""
        try:
            return sorted(
                o.object_name
                for o in self._client.list_objects(self.bucket, prefix=prefix or None, recursive=True)
                if o.object_name is not None
            )
        except (MinioException, urllib3.exceptions.HTTPError, ValueError) as exc:
            raise self._error(f"cannot list prefix {prefix!r}:", None, exc) from exc

    def stat(self, key: str) -> ObjectInfo:
        check_key(key)
        info = self._call("cannot stat", key, self._client.stat_object, self.bucket, key)
        return ObjectInfo(
            key=key,
            size=int(info.size or 0),
            content_type=info.content_type or "application/octet-stream",
            etag=info.etag,
        )

    def presigned_get(self, key: str, expiry_s: int | None = None) -> str:
        """A URL that GETs the object without credentials until it expires, signed for the public endpoint.
        Pure computation (no request): a missing key gives a URL that answers 404."""
        check_key(key)
        expires = timedelta(seconds=expiry_s or self.presign_expiry_s)
        return str(
            self._call("cannot sign", key, self._public.presigned_get_object, self.bucket, key, expires)
        )

    def health(self) -> Health:
        try:
            if not self._client.bucket_exists(self.bucket):
                return Health(False, f"bucket {self.bucket!r} does not exist at {self.endpoint}")
        except (MinioException, urllib3.exceptions.HTTPError, ValueError) as exc:
            return Health(False, str(self._error("cannot reach", None, exc)))
        return Health(True, f"bucket {self.bucket!r} at {self.endpoint}")

    # ------------------------------------------------------------------------------------------ errors

    def _call(self, what: str, key: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except (MinioException, urllib3.exceptions.HTTPError, ValueError, OSError) as exc:
            raise self._error(what, key, exc) from exc

    def _error(self, what: str, key: str | None, exc: Exception) -> StorageError:
        where = (
            f"{key!r} in bucket {self.bucket!r} at {self.endpoint}"
            if key
            else f"bucket {self.bucket!r} at {self.endpoint}"
        )
        if isinstance(exc, S3Error):
            if exc.code in MISSING_CODES:
                return NotFound(f"no object {where}", key=key)
            if exc.code == "NoSuchBucket":
                return StorageError(f"{what} {where}: the bucket does not exist (ensure_bucket)", key=key)
            return StorageError(f"{what} {where}: {exc.code}: {exc.message}", key=key)
        if isinstance(exc, ServerError):
            return StorageError(f"{what} {where}: server error {exc.status_code}", key=key, retryable=True)
        if isinstance(exc, InvalidResponseError):
            return StorageError(f"{what} {where}: unexpected response: {exc}", key=key, retryable=True)
        if isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError | TimeoutError):
            reason = getattr(exc, "reason", None) or exc
            return StorageError(
                f"{what} {where}: object storage does not answer ({type(reason).__name__}: {reason})",
                key=key,
                retryable=True,
            )
        return StorageError(f"{what} {where}: {exc}", key=key)
