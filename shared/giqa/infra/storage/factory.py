"""Building the store the settings describe (one per process), and storing images content-addressed.

One client per process (decided): the ``minio`` client's connection pool must not be shared across a
``fork`` (Celery's prefork workers, gunicorn), so :func:`make_store` caches stores per PID; a forked child
asks again and gets its own.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass

from PIL import Image

from giqa.backends.images import DEFAULT_MAX_PIXELS, decode_image, image_format
from giqa.infra.storage.base import ObjectStore
from giqa.infra.storage.keys import image_key
from giqa.infra.storage.local import LocalObjectStore
from giqa.settings import Settings, objects_dir

_lock = threading.Lock()
_stores: dict[tuple[object, ...], ObjectStore] = {}
_pid = os.getpid()

SUFFIXES = {"JPEG": "jpg", "TIFF": "tif"}


def make_store(settings: Settings, *, ensure_bucket: bool = True) -> ObjectStore:
    """The object store of ``settings.storage`` (MinIO/S3 when ``endpoint`` is set, else the local folder
    ``<data_dir>/objects``), built once per process and settings; ``ensure_bucket`` creates the bucket
    (folder) when it is built, so a store that is down fails here with a retryable :class:`StorageError`."""
    global _pid
    conf = settings.storage
    secret = conf.secret_key.get_secret_value() if conf.secret_key else None
    identity = (
        conf.endpoint,
        conf.public_endpoint,
        conf.access_key,
        secret,
        conf.bucket,
        conf.region,
        conf.multipart_threshold_bytes,
        conf.presign_expiry_s,
        conf.timeout_s,
        None if conf.endpoint else str(objects_dir(settings).absolute()),
    )
    with _lock:
        if os.getpid() != _pid:  # a forked child: the parent's clients are not ours to use
            _stores.clear()
            _pid = os.getpid()
        store = _stores.get(identity)
        if store is None:
            store = _build(settings)
            if ensure_bucket:
                store.ensure_bucket()
            _stores[identity] = store
        return store


def _build(settings: Settings) -> ObjectStore:
    conf = settings.storage
    if conf.endpoint is None:
        return LocalObjectStore(objects_dir(settings))
    from giqa.infra.storage.s3 import MinioObjectStore

    return MinioObjectStore(
        conf.endpoint,
        bucket=conf.bucket,
        access_key=conf.access_key,
        secret_key=conf.secret_key.get_secret_value() if conf.secret_key else None,
        region=conf.region,
        public_endpoint=conf.public_endpoint,
        part_size=conf.multipart_threshold_bytes,
        presign_expiry_s=conf.presign_expiry_s,
        timeout_s=conf.timeout_s,
    )


@dataclass(frozen=True, slots=True)
class ImageRef:
    """A stored image: what :func:`giqa.infra.db.dal.add_image` records."""

    sha256: str
    key: str
    width: int
    height: int
    nbytes: int
    format: str


def put_image(
    store: ObjectStore, data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, where: str = "image"
) -> ImageRef:
    """Check that ``data`` is an image (:func:`giqa.backends.images.decode_image`: an
    :class:`~giqa.backends.images.ImageError` says why not), and store it under its content address,
    uploading only when the key is not there yet (so storing the same image twice costs one upload)."""
    image = decode_image(data, max_pixels=max_pixels, where=where)
    fmt = image_format(data)
    sha256 = hashlib.sha256(data).hexdigest()
    key = image_key(sha256, SUFFIXES.get(fmt, fmt.lower()))
    if not store.exists(key):
        store.put_bytes(key, data, content_type=Image.MIME.get(fmt, "application/octet-stream"))
    return ImageRef(sha256, key, image.width, image.height, len(data), fmt)
