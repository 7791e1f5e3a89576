"""giqa.infra.storage against a real S3 server on loopback (moto in server mode): the behaviour tests of the
local store run on both stores, then what only a server shows: presigned URLs fetched over HTTP, multipart
uploads, a server that stops, one client per process across a fork."""

from __future__ import annotations

import multiprocessing
import os
import uuid
from pathlib import Path

import httpx
import pytest

from giqa.infra.storage import LocalObjectStore, NotFound, ObjectStore, StorageError, make_store
from giqa.infra.storage.s3 import MinioObjectStore
from giqa.settings import Settings
from s3_server import start_s3_server, stop
from unit.infra import test_storage_local as behaviour

pytestmark = pytest.mark.integration

ACCESS, SECRET = "giqa-test", "giqa-test-secret"
MIB = 1024 * 1024

# the local store's behaviour tests, run here on both stores through the parametrized fixture below
globals().update(
    {name: getattr(behaviour, name) for name in dir(behaviour) if name.startswith("test_store_")}
)


def s3_store(endpoint: str, **kwargs: object) -> MinioObjectStore:
    store = MinioObjectStore(
        endpoint,
        bucket=f"giqa-{uuid.uuid4().hex[:12]}",
        access_key=ACCESS,
        secret_key=SECRET,
        **kwargs,  # type: ignore[arg-type]
    )
    store.ensure_bucket()
    return store


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        local = LocalObjectStore(tmp_path / "objects")
        local.ensure_bucket()
        return local
    return s3_store(request.getfixturevalue("s3_server"))


def test_presigned_url_is_signed_for_the_public_endpoint_and_works(s3_server: str) -> None:
    public = s3_server.replace("127.0.0.1", "localhost")  # the host clients reach, not the in-cluster one
    store = s3_store(s3_server, public_endpoint=public)
    store.put_bytes("datasets/r/train.json", b'{"ok": 1}', content_type="application/json")
    url = store.presigned_get("datasets/r/train.json", expiry_s=60)
    assert url.startswith(f"{public}/{store.bucket}/datasets/r/train.json?")
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=60" in url
    response = httpx.get(url)
    assert response.status_code == 200 and response.content == b'{"ok": 1}'
    assert store.stat("datasets/r/train.json").content_type == "application/json"


def test_a_big_file_goes_up_in_parts(s3_server: str, tmp_path: Path) -> None:
    store = s3_store(s3_server, part_size=5 * MIB)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(6 * MIB + 123))
    store.put_file("checkpoints/c/model.bin", big)
    info = store.stat("checkpoints/c/model.bin")
    assert info.size == 6 * MIB + 123
    assert info.etag is not None and info.etag.endswith("-2")  # S3's mark of a two-part upload
    assert store.get_bytes("checkpoints/c/model.bin") == big.read_bytes()
    store.put_bytes("checkpoints/c/blob.bin", big.read_bytes())  # bytes over the part size: parts too
    assert (store.stat("checkpoints/c/blob.bin").etag or "").endswith("-2")


def test_a_part_size_below_s3s_minimum_is_refused(s3_server: str) -> None:
    with pytest.raises(ValueError, match="part size"):
        MinioObjectStore(s3_server, bucket="b-x-y", access_key=ACCESS, secret_key=SECRET, part_size=MIB)


def test_a_missing_bucket_says_so(s3_server: str) -> None:
    store = MinioObjectStore(
        s3_server, bucket=f"absent-{uuid.uuid4().hex[:8]}", access_key=ACCESS, secret_key=SECRET
    )
    with pytest.raises(StorageError, match="bucket does not exist"):
        store.put_bytes("k", b"x")
    assert not store.health().ok


def test_a_stopped_server_is_a_retryable_error_naming_key_and_endpoint(tmp_path: Path) -> None:
    process, endpoint = start_s3_server(tmp_path)
    try:
        store = s3_store(endpoint, timeout_s=2.0)
        store.put_bytes("images/k.png", b"x")
    finally:
        stop(process)
    with pytest.raises(StorageError) as caught:
        store.get_bytes("images/k.png")
    error = caught.value
    assert error.retryable and not isinstance(error, NotFound) and error.key == "images/k.png"
    assert "does not answer" in str(error) and endpoint in str(error) and "images/k.png" in str(error)
    health = store.health()
    assert not health.ok and "does not answer" in health.detail


def _child_uses_its_own_client(settings: Settings, inherited_id: int) -> None:
    store = make_store(settings)
    store.put_bytes("from/child", str(os.getpid()).encode())
    os._exit(0 if id(store) != inherited_id else 1)


def test_make_store_is_one_client_per_process(s3_server: str, tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        storage={
            "endpoint": s3_server,
            "access_key": ACCESS,
            "secret_key": SECRET,
            "bucket": f"giqa-{uuid.uuid4().hex[:12]}",
        },
    )
    store = make_store(settings)  # creates the bucket
    assert isinstance(store, MinioObjectStore) and make_store(settings) is store
    child = multiprocessing.get_context("fork").Process(
        target=_child_uses_its_own_client, args=(settings, id(store))
    )
    child.start()
    child.join(timeout=30)
    assert child.exitcode == 0
    assert store.get_bytes("from/child") == str(child.pid).encode()
