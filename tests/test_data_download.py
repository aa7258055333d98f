"""SHD download: checksums, resume, idempotence and network errors, against a local server.

The server runs on 127.0.0.1 on an ephemeral port in a thread and serves small random
"archives" built per test, so nothing here touches the real host.
"""

from __future__ import annotations

import gzip
import hashlib
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from mosaicnet.data import download as dl
from mosaicnet.data.download import (
    ChecksumError,
    DownloadError,
    download_shd,
    parse_md5sums,
)
from mosaicnet.errors import MosaicnetError


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


class _Files:
    """What the test server serves, and what it saw."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.support_range = True
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.truncate_after: dict[str, int] = {}  # name -> bytes sent before hanging up


class _Handler(BaseHTTPRequestHandler):
    """Serve `_Files` with optional single-range support (``bytes=N-``)."""

    store: _Files

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 - name fixed by BaseHTTPRequestHandler
        name = self.path.lstrip("/")
        header = self.headers.get("Range")
        self.store.requests.append((name, header))
        body = self.store.files.get(name)
        if body is None:
            self.send_error(404)
            return
        start = 0
        if header and self.store.support_range:
            start = int(header.removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        cut = self.store.truncate_after.get(name)
        # Simulates a dropped connection: announce the full length, send less, close.
        self.wfile.write(payload if cut is None else payload[:cut])


@pytest.fixture
def server() -> Iterator[tuple[str, _Files]]:
    store = _Files()
    handler = type("Handler", (_Handler,), {"store": store})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/data/", store
    finally:
        httpd.shutdown()
        httpd.server_close()


def _publish(store: _Files, seed: int = 0, *, list_data: bool = True) -> dict[str, bytes]:
    """Put a random train/test archive pair and its md5sums.txt under /data/."""
    rng = np.random.default_rng(seed)
    content = {
        # Low-entropy bytes so gzip really compresses; a few KB keeps the tests quick.
        "shd_train.h5": rng.integers(0, 4, 6000, dtype=np.uint8).tobytes(),
        "shd_test.h5": rng.integers(0, 4, 3000, dtype=np.uint8).tobytes(),
    }
    lines = []
    for name, data in content.items():
        archive = gzip.compress(data, mtime=0)
        store.files[f"data/{name}.gz"] = archive
        lines.append(f"{_md5(archive)}  {name}.gz")
        if list_data:
            lines.append(f"{_md5(data)}  {name}")
    store.files["data/md5sums.txt"] = ("\n".join(lines) + "\n").encode()
    return content


def _closed_port() -> int:
    """Return a port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_downloads_verifies_and_decompresses(server, tmp_path):
    url, store = server
    content = _publish(store)
    paths = download_shd(tmp_path / "shd", base_url=url, progress=False)
    assert paths == [tmp_path / "shd" / "shd_train.h5", tmp_path / "shd" / "shd_test.h5"]
    for path in paths:
        assert path.read_bytes() == content[path.name]
    left = sorted(p.name for p in (tmp_path / "shd").iterdir())
    assert left == [
        "md5sums.txt",
        "shd_test.h5",
        "shd_test.h5.gz",
        "shd_train.h5",
        "shd_train.h5.gz",
    ]  # no .part file survives a successful run


def test_second_run_is_skipped_and_repairs_a_damaged_file(server, tmp_path):
    url, store = server
    content = _publish(store)
    download_shd(tmp_path, base_url=url, progress=False)
    store.requests.clear()
    download_shd(tmp_path, base_url=url, progress=False)
    # Only the checksum list is fetched again (a mirror's list is authoritative).
    assert [name for name, _ in store.requests] == ["data/md5sums.txt"]

    (tmp_path / "shd_test.h5").write_bytes(b"damaged")
    store.requests.clear()
    download_shd(tmp_path, base_url=url, progress=False)
    # The verified archive kept beside it re-creates the file without a new transfer.
    assert [name for name, _ in store.requests] == ["data/md5sums.txt"]
    assert (tmp_path / "shd_test.h5").read_bytes() == content["shd_test.h5"]


def test_default_mode_uses_published_checksums_and_works_offline_once_done(
    server, tmp_path, monkeypatch
):
    url, store = server
    content = _publish(store)
    published = {f"{n}.gz": _md5(store.files[f"data/{n}.gz"]) for n in content}
    published |= {n: _md5(d) for n, d in content.items()}
    monkeypatch.setattr(dl, "SHD_BASE_URL", url)
    monkeypatch.setattr(dl, "PUBLISHED_MD5", published)
    del store.files["data/md5sums.txt"]  # optional on the official host
    download_shd(tmp_path, progress=False)
    assert (tmp_path / "shd_train.h5").read_bytes() == content["shd_train.h5"]

    monkeypatch.setattr(dl, "SHD_BASE_URL", f"http://127.0.0.1:{_closed_port()}/")
    assert len(download_shd(tmp_path, progress=False)) == 2  # no network needed


def test_default_mode_rejects_archive_that_differs_from_published(server, tmp_path, monkeypatch):
    url, store = server
    _publish(store)
    monkeypatch.setattr(dl, "SHD_BASE_URL", url)
    # The built-in values (the real SHD's) cannot match the random test archives, even
    # though the server's own md5sums.txt matches them: the published values win.
    with pytest.warns(UserWarning, match="published value"), pytest.raises(ChecksumError):
        download_shd(tmp_path, progress=False)
    assert not any(p.name.startswith("shd_train") for p in tmp_path.iterdir())


def test_resumes_partial_download_with_range(server, tmp_path):
    url, store = server
    _publish(store)
    archive = store.files["data/shd_train.h5.gz"]
    done = len(archive) // 3
    (tmp_path / "shd_train.h5.gz.part").write_bytes(archive[:done])
    download_shd(tmp_path, base_url=url, progress=False)
    assert ("data/shd_train.h5.gz", f"bytes={done}-") in store.requests
    assert (tmp_path / "shd_train.h5.gz").read_bytes() == archive


def test_complete_part_is_verified_not_refetched(server, tmp_path):
    url, store = server
    _publish(store)
    archive = store.files["data/shd_train.h5.gz"]
    (tmp_path / "shd_train.h5.gz.part").write_bytes(archive)  # finished, never moved
    download_shd(tmp_path, base_url=url, progress=False)
    # The server answers 416 (nothing left to send); the checksum then accepts the part.
    ranges = [r for name, r in store.requests if name == "data/shd_train.h5.gz"]
    assert ranges == [f"bytes={len(archive)}-"]
    assert (tmp_path / "shd_train.h5.gz").read_bytes() == archive


def test_restarts_cleanly_when_server_ignores_range(server, tmp_path):
    url, store = server
    _publish(store)
    store.support_range = False
    archive = store.files["data/shd_train.h5.gz"]
    (tmp_path / "shd_train.h5.gz.part").write_bytes(b"x" * 100)  # would corrupt if appended
    download_shd(tmp_path, base_url=url, progress=False)
    assert (tmp_path / "shd_train.h5.gz").read_bytes() == archive


def test_resumed_part_with_wrong_bytes_is_refetched_from_scratch(server, tmp_path):
    url, store = server
    _publish(store)
    archive = store.files["data/shd_train.h5.gz"]
    (tmp_path / "shd_train.h5.gz.part").write_bytes(b"\0" * 50)  # not the archive's prefix
    download_shd(tmp_path, base_url=url, progress=False)
    assert (tmp_path / "shd_train.h5.gz").read_bytes() == archive
    ranges = [r for name, r in store.requests if name == "data/shd_train.h5.gz"]
    assert ranges == ["bytes=50-", None]  # resume attempt, then one clean download


def test_interrupted_transfer_keeps_part_and_next_run_resumes(server, tmp_path):
    url, store = server
    content = _publish(store)
    archive = store.files["data/shd_train.h5.gz"]
    store.truncate_after["data/shd_train.h5.gz"] = 200
    with pytest.raises(DownloadError, match="resumes it"):
        download_shd(tmp_path, base_url=url, progress=False)
    assert (tmp_path / "shd_train.h5.gz.part").read_bytes() == archive[:200]
    assert not (tmp_path / "shd_train.h5.gz").exists()
    del store.truncate_after["data/shd_train.h5.gz"]
    download_shd(tmp_path, base_url=url, progress=False)
    assert ("data/shd_train.h5.gz", "bytes=200-") in store.requests
    assert (tmp_path / "shd_train.h5").read_bytes() == content["shd_train.h5"]


def test_checksum_mismatch_removes_bad_file(server, tmp_path):
    url, store = server
    _publish(store)
    store.files["data/shd_test.h5.gz"] = gzip.compress(b"tampered", mtime=0)
    with pytest.raises(ChecksumError, match="shd_test.h5.gz") as info:
        download_shd(tmp_path, base_url=url, progress=False)
    assert "removed" in str(info.value)
    assert isinstance(info.value, MosaicnetError)
    assert not (tmp_path / "shd_test.h5.gz").exists()
    assert not (tmp_path / "shd_test.h5.gz.part").exists()
    assert not (tmp_path / "shd_test.h5").exists()


def test_decompressed_checksum_mismatch_leaves_no_final_file(server, tmp_path):
    url, store = server
    _publish(store)
    listed = parse_md5sums(store.files["data/md5sums.txt"].decode())
    listed["shd_test.h5"] = "0" * 32
    store.files["data/md5sums.txt"] = "".join(f"{v}  {k}\n" for k, v in listed.items()).encode()
    with pytest.raises(ChecksumError, match="shd_test.h5"):
        download_shd(tmp_path, base_url=url, progress=False)
    assert not (tmp_path / "shd_test.h5").exists()
    assert not (tmp_path / "shd_test.h5.part").exists()


def test_mirror_without_entry_or_list_is_an_error(server, tmp_path):
    url, store = server
    _publish(store)
    train_md5 = _md5(store.files["data/shd_train.h5.gz"])
    store.files["data/md5sums.txt"] = f"{train_md5}  shd_train.h5.gz\n".encode()
    store.requests.clear()
    with pytest.raises(ChecksumError, match="no entry for shd_test.h5.gz"):
        download_shd(tmp_path / "a", base_url=url, progress=False)
    # Checked before any transfer: nothing but the list was fetched.
    assert [name for name, _ in store.requests] == ["data/md5sums.txt"]
    del store.files["data/md5sums.txt"]
    with pytest.raises(ChecksumError, match="must serve md5sums.txt"):
        download_shd(tmp_path / "b", base_url=url, progress=False)


def test_mirror_without_data_entries_verifies_archives_only(server, tmp_path):
    url, store = server
    content = _publish(store, list_data=False)
    paths = download_shd(tmp_path, base_url=url, progress=False)
    assert [p.read_bytes() for p in paths] == [content["shd_train.h5"], content["shd_test.h5"]]
    store.requests.clear()
    download_shd(tmp_path, base_url=url, progress=False)  # skipped via the archive's content
    assert [name for name, _ in store.requests] == ["data/md5sums.txt"]


def test_unreachable_host_says_how_to_download_by_hand(tmp_path):
    port = _closed_port()
    with pytest.raises(DownloadError) as info:
        download_shd(tmp_path, base_url=f"http://127.0.0.1:{port}/x/", timeout_s=5)
    message = str(info.value)
    assert f"could not reach host 127.0.0.1:{port}" in message
    assert f"http://127.0.0.1:{port}/x/shd_train.h5.gz" in message
    assert str(tmp_path) in message and "by hand" in message


def test_http_error_is_reported_with_status(server, tmp_path):
    url, store = server
    _publish(store)
    del store.files["data/shd_train.h5.gz"]
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_shd(tmp_path, base_url=url, progress=False)


def test_file_url_mirror(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    store = _Files()
    content = _publish(store)
    for name, data in store.files.items():
        (mirror / name.removeprefix("data/")).write_bytes(data)
    paths = download_shd(tmp_path / "out", base_url=mirror.as_uri(), progress=False)
    assert paths[0].read_bytes() == content["shd_train.h5"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"base_url": "ftp://example.org/"}, "base_url"),
        ({"timeout_s": 0}, "timeout_s"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(MosaicnetError, match=match):
        download_shd(tmp_path, progress=False, **kwargs)


def test_destination_that_is_a_file(tmp_path):
    target = tmp_path / "taken"
    target.write_text("")
    with pytest.raises(MosaicnetError, match="not a directory"):
        download_shd(target, progress=False)


def test_parse_md5sums_formats_and_errors():
    text = (
        "# comment\n"
        f"{'A' * 32}  ./datasets/shd_train.h5.gz\n"
        f"{'b' * 32} *shd_test.h5.gz\n"
        f"MD5 (shd_test.h5) = {'c' * 32}\n"
    )
    assert parse_md5sums(text) == {
        "shd_train.h5.gz": "a" * 32,
        "shd_test.h5.gz": "b" * 32,
        "shd_test.h5": "c" * 32,
    }
    with pytest.raises(MosaicnetError, match="line 1"):
        parse_md5sums("not a checksum line\n")
    with pytest.raises(MosaicnetError, match="twice"):
        parse_md5sums(f"{'a' * 32}  f\n{'b' * 32}  f\n")


def test_published_checksums_are_the_documented_values():
    # Guards the constants against accidental edits (values from norse, see module doc).
    assert dl.PUBLISHED_MD5["shd_train.h5.gz"] == "d47c9825dee33347913e8ce0f2be08b0"
    assert dl.PUBLISHED_MD5["shd_test.h5.gz"] == "3062a80ec0c5719404d5b02e166543b1"
    assert dl.PUBLISHED_MD5["shd_train.h5"] == "8e9877c85f29a28dd353ea6a54402667"
    assert dl.PUBLISHED_MD5["shd_test.h5"] == "207ad1295a0ab611e22d1734989c254e"


def test_progress_bar_writes_to_stderr(server, tmp_path, capsys):
    url, store = server
    _publish(store)
    download_shd(tmp_path, base_url=url, progress=True)
    assert "shd_train.h5.gz" in capsys.readouterr().err
    download_shd(tmp_path / "quiet", base_url=url, progress=False)
    assert capsys.readouterr().err == ""


def test_mismatching_archive_is_kept_renamed_not_deleted(server, tmp_path, caplog):
    """An archive that fails verification may be the user's only copy: renamed, then the
    verified one is downloaded beside it."""
    url, store = server
    content = _publish(store)
    mine = gzip.compress(b"a colleague's copy", mtime=0)
    (tmp_path / "shd_train.h5.gz").write_bytes(mine)
    download_shd(tmp_path, base_url=url, progress=False)
    assert (tmp_path / "shd_train.h5.gz.mismatch").read_bytes() == mine
    assert (tmp_path / "shd_train.h5").read_bytes() == content["shd_train.h5"]
    assert "kept it as" in caplog.text
