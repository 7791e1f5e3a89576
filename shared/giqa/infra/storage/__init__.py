"""Object storage: images (content-addressed), uploads, datasets, reports, checkpoints.

MinIO/S3 through the ``minio`` client in a cluster (:class:`MinioObjectStore`), a local folder embedded
(:class:`LocalObjectStore`); both behave the same behind :class:`ObjectStore`, and :func:`make_store`
picks one from the settings. Keys come from the pure builders in :mod:`.keys`.
"""

from giqa.infra.storage.base import InvalidKey, NotFound, ObjectInfo, ObjectStore, StorageError, check_key
from giqa.infra.storage.factory import ImageRef, make_store, put_image
from giqa.infra.storage.folders import get_folder, put_folder
from giqa.infra.storage.keys import (
    checkpoint_key,
    dataset_key,
    image_key,
    job_key,
    prefix_of,
    report_key,
    upload_key,
)
from giqa.infra.storage.local import LocalObjectStore

__all__ = [
    "ImageRef",
    "InvalidKey",
    "LocalObjectStore",
    "NotFound",
    "ObjectInfo",
    "ObjectStore",
    "StorageError",
    "check_key",
    "checkpoint_key",
    "dataset_key",
    "get_folder",
    "image_key",
    "job_key",
    "make_store",
    "prefix_of",
    "put_folder",
    "put_image",
    "report_key",
    "upload_key",
]
