"""giqa.infra.storage: the pure key builders, and the object-store behaviour on the local folder store.

The behaviour tests (``test_store_*``) take a ``store`` fixture; ``tests/integration/test_storage_s3.py``
runs the same tests against a real S3 server, so both stores are held to one behaviour.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from giqa.backends.images import ImageError
from giqa.infra.storage import (
    InvalidKey,
    LocalObjectStore,
    NotFound,
    ObjectStore,
    StorageError,
    check_key,
    checkpoint_key,
    dataset_key,
    image_key,
    make_store,
    prefix_of,
    put_image,
    report_key,
    upload_key,
)
from giqa.settings import Settings

pytestmark = pytest.mark.unit

SHA = hashlib.sha256(b"x").hexdigest()


def png(width: int = 5, height: int = 3, color: str = "red") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def store(tmp_path: Path) -> ObjectStore:
    local = LocalObjectStore(tmp_path / "objects")
    local.ensure_bucket()
    return local


# ---------------------------------------------------------------------------------------------- keys


def test_key_builders() -> None:
    assert image_key(SHA, "PNG") == f"images/{SHA[:2]}/{SHA}.png"
    assert image_key(SHA, ".jpg") == f"images/{SHA[:2]}/{SHA}.jpg"
    assert dataset_key("r1", "train.json") == "datasets/r1/train.json"
    assert dataset_key("r1", "images/a.png") == "datasets/r1/images/a.png"
    assert upload_key("r1", "descriptions.jsonl") == "uploads/r1/descriptions.jsonl"
    assert report_key("eval-3", "report.html") == "reports/eval-3/report.html"
    assert checkpoint_key("ck.1", "adapter/model.safetensors") == "checkpoints/ck.1/adapter/model.safetensors"
    assert prefix_of("datasets", "r1") == "datasets/r1/"


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: image_key("ABC", "png"), "sha256"),
        (lambda: image_key(SHA.upper(), "png"), "sha256"),
        (lambda: image_key(SHA, "p/ng"), "suffix"),
        (lambda: image_key(SHA, ""), "suffix"),
        (lambda: dataset_key("..", "x"), "id"),
        (lambda: dataset_key("a/b", "x"), "id"),
        (lambda: dataset_key("r", "../../etc/passwd"), "'..'"),
        (lambda: dataset_key("r", "/abs"), "empty"),
        (lambda: dataset_key("r", ""), "empty"),
        (lambda: report_key("r", "a//b"), "empty"),
        (lambda: checkpoint_key("r", "a\\b"), "backslash"),
        (lambda: upload_key("r", "a\nb"), "control"),
        (lambda: prefix_of("secrets", "r"), "unknown key kind"),
        (lambda: check_key("/etc/passwd"), "starts with '/'"),
        (lambda: check_key("x" * 1025), "over the limit"),
    ],
)
def test_bad_key_parts_are_refused(build, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidKey, match=message):
        build()


@given(st.lists(st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=8), min_size=1))
def test_a_checked_key_never_climbs_out(parts: list[str]) -> None:
    key = "/".join(parts)
    try:
        check_key(key)
    except InvalidKey:
        return
    assert not key.startswith("/") and ".." not in key.split("/") and "" not in key.split("/")


# ------------------------------------------------------------------------------ store behaviour


def test_store_round_trip_and_overwrite(store: ObjectStore) -> None:
    store.put_bytes("a/b/c.bin", b"one")
    assert store.get_bytes("a/b/c.bin") == b"one" and store.exists("a/b/c.bin")
    store.put_bytes("a/b/c.bin", b"second")
    assert store.get_bytes("a/b/c.bin") == b"second"
    info = store.stat("a/b/c.bin")
    assert (info.key, info.size) == ("a/b/c.bin", 6)
    store.put_bytes("empty", b"")
    assert store.get_bytes("empty") == b"" and store.stat("empty").size == 0


def test_store_missing_keys_are_not_found(store: ObjectStore) -> None:
    assert not store.exists("nope/x")
    for call in (lambda: store.get_bytes("nope/x"), lambda: store.stat("nope/x")):
        with pytest.raises(NotFound, match="nope/x") as caught:
            call()
        assert caught.value.key == "nope/x" and not caught.value.retryable
    store.put_bytes("dir/file", b"x")
    assert not store.exists("dir")  # a prefix is not an object
    with pytest.raises(NotFound):
        store.get_bytes("dir")


def test_store_delete_is_idempotent(store: ObjectStore) -> None:
    store.put_bytes("d/x", b"1")
    store.delete("d/x")
    store.delete("d/x")
    assert not store.exists("d/x") and store.list("d/") == []


def test_store_list_by_prefix_sorted(store: ObjectStore) -> None:
    for key in ("runs/b/2", "runs/a/1", "runs/a/0", "runsx/9", "other/1"):
        store.put_bytes(key, b"x")
    assert store.list("runs/") == ["runs/a/0", "runs/a/1", "runs/b/2"]
    assert store.list("runs") == ["runs/a/0", "runs/a/1", "runs/b/2", "runsx/9"]
    assert store.list("runs/a/") == ["runs/a/0", "runs/a/1"]
    assert store.list("missing/") == []
    assert len(store.list()) == 5


def test_store_files_up_and_down(store: ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "in.bin"
    source.write_bytes(os.urandom(70_000))
    store.put_file("f/in.bin", source, content_type="application/octet-stream")
    target = tmp_path / "out" / "copy.bin"
    target.parent.mkdir()
    store.get_file("f/in.bin", target)
    assert target.read_bytes() == source.read_bytes()
    with pytest.raises(StorageError, match="no file"):
        store.put_file("f/missing", tmp_path / "missing.bin")
    with pytest.raises(NotFound):
        store.get_file("f/none", tmp_path / "none.bin")


def test_store_refuses_bad_keys(store: ObjectStore) -> None:
    for bad in ("../escape", "/abs", "a/../../b", "", "a//b"):
        with pytest.raises(InvalidKey):
            store.put_bytes(bad, b"x")
        with pytest.raises(InvalidKey):
            store.get_bytes(bad)


def test_store_put_image_is_content_addressed_and_idempotent(store: ObjectStore) -> None:
    data = png(5, 3)
    ref = put_image(store, data)
    assert ref.sha256 == hashlib.sha256(data).hexdigest()
    assert ref.key == image_key(ref.sha256, "png")
    assert (ref.width, ref.height, ref.nbytes, ref.format) == (5, 3, len(data), "PNG")
    assert store.get_bytes(ref.key) == data
    assert put_image(store, data) == ref
    assert store.list("images/") == [ref.key]
    jpeg = io.BytesIO()
    Image.new("RGB", (4, 4), "blue").save(jpeg, format="JPEG")
    assert put_image(store, jpeg.getvalue()).key.endswith(".jpg")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"not an image", "cannot read upload.png as an image"),
        (png()[:40], "not an image format|corrupt or truncated"),
    ],
)
def test_store_put_image_refuses_bad_bytes_and_stores_nothing(
    store: ObjectStore, data: bytes, message: str
) -> None:
    with pytest.raises(ImageError, match=message):
        put_image(store, data, where="upload.png")
    assert store.list("images/") == []


def test_store_put_image_refuses_too_many_pixels(store: ObjectStore) -> None:
    with pytest.raises(ImageError, match="over the limit"):
        put_image(store, png(50, 50), max_pixels=100)


def test_store_health(store: ObjectStore) -> None:
    assert store.health().ok


# ------------------------------------------------------------------------------------- local only


def test_local_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "o")
    store.put_bytes("k/x", b"1")
    (tmp_path / "o" / "k" / ".x.abc.tmp").write_bytes(b"in progress")
    assert store.list() == ["k/x"]
    assert sorted(p.name for p in (tmp_path / "o" / "k").iterdir()) == [".x.abc.tmp", "x"]


def test_local_presigned_url_is_a_file_url(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "o")
    store.put_bytes("k/x", b"1")
    assert store.presigned_get("k/x") == (tmp_path / "o" / "k" / "x").as_uri()
    with pytest.raises(NotFound):
        store.presigned_get("k/y")


def test_local_health_of_a_missing_folder(tmp_path: Path) -> None:
    health = LocalObjectStore(tmp_path / "never").health()
    assert not health.ok and "does not exist" in health.detail


def test_make_store_defaults_to_a_local_folder_once_per_process(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    store = make_store(settings)
    assert isinstance(store, LocalObjectStore) and store.root == (tmp_path / "data" / "objects").absolute()
    assert store.root.is_dir()
    assert make_store(Settings(data_dir=tmp_path / "data")) is store
    assert make_store(Settings(data_dir=tmp_path / "other")) is not store


def test_storage_settings_normalize_endpoints() -> None:
    conf = Settings(storage={"endpoint": "minio:9000", "public_endpoint": "https://s3.example.org/"}).storage
    assert conf.endpoint == "http://minio:9000" and conf.public_endpoint == "https://s3.example.org"
    assert (
        Settings(storage={"endpoint": "minio:9000", "secure": True}).storage.endpoint == "https://minio:9000"
    )
    with pytest.raises(ValueError, match="not an http"):
        Settings(storage={"endpoint": "ftp://x"})
