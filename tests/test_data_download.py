"""SHD download through pooch: checksums, files in place, idempotence, errors, the CLI.

A local HTTP server (127.0.0.1, ephemeral port, in a thread) and ``file://`` folders
serve small random "archives" built per test, so nothing here touches the real host.
"""

from __future__ import annotations

import gzip
import hashlib
import socket
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from mosaicnet.cli import main
from mosaicnet.data import download as dl  # noqa: E402
from mosaicnet.data.download import (  # noqa: E402
    ChecksumError,
    DownloadError,
    download_shd,
    parse_md5sums,
)
from mosaicnet.errors import DataFormatError, MosaicnetError  # noqa: E402


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


class _Files:
    """What the test server serves, and what it saw."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        self.truncate_after: dict[str, int] = {}  # name -> bytes sent before hanging up
        self.status: dict[str, int] = {}  # name -> HTTP error to answer instead


class _Handler(BaseHTTPRequestHandler):
    """Serve `_Files`, with dropped connections and HTTP errors on demand."""

    store: _Files

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 - name fixed by BaseHTTPRequestHandler
        name = self.path.lstrip("/")
        self.store.requests.append(name)
        body = self.store.files.get(name)
        if name in self.store.status or body is None:
            self.send_error(self.store.status.get(name, 404))
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = self.store.truncate_after.get(name)
        # Simulates a dropped connection: announce the full length, send less, close.
        self.wfile.write(body if cut is None else body[:cut])


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


def _as_published(store: _Files, monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """Make the test server the 'official host' and its files the published ones."""
    published = {}
    for key, data in store.files.items():
        if key.endswith(".gz"):
            name = key.removeprefix("data/")
            published[name] = _md5(data)
            published[name.removesuffix(".gz")] = _md5(gzip.decompress(data))
    monkeypatch.setattr(dl, "SHD_BASE_URL", url)
    monkeypatch.setattr(dl, "PUBLISHED_MD5", published)


def _no_network(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Make every socket connection fail; return the list of attempted addresses."""
    attempts: list[object] = []

    def refuse(self: socket.socket, address: object) -> None:
        attempts.append(address)
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


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
    ]  # no temporary or .part file survives a successful run


def test_second_run_is_skipped_and_a_damaged_file_is_kept_aside(server, tmp_path):
    url, store = server
    content = _publish(store)
    download_shd(tmp_path, base_url=url, progress=False)
    store.requests.clear()
    download_shd(tmp_path, base_url=url, progress=False)
    # Only the checksum list is fetched again (a mirror's list is authoritative).
    assert store.requests == ["data/md5sums.txt"]

    (tmp_path / "shd_test.h5").write_bytes(b"damaged")
    store.requests.clear()
    download_shd(tmp_path, base_url=url, progress=False)
    # The verified archive kept beside it re-creates the file without a new transfer,
    # and the file that was there is renamed, not deleted.
    assert store.requests == ["data/md5sums.txt"]
    assert (tmp_path / "shd_test.h5").read_bytes() == content["shd_test.h5"]
    assert (tmp_path / "shd_test.h5.mismatch").read_bytes() == b"damaged"


def test_default_mode_uses_published_checksums_and_works_offline_once_done(
    server, tmp_path, monkeypatch
):
    url, store = server
    content = _publish(store)
    _as_published(store, monkeypatch, url)
    del store.files["data/md5sums.txt"]  # optional on the official host
    download_shd(tmp_path, progress=False)
    assert (tmp_path / "shd_train.h5").read_bytes() == content["shd_train.h5"]

    monkeypatch.setattr(dl, "SHD_BASE_URL", f"http://127.0.0.1:{_closed_port()}/")
    attempts = _no_network(monkeypatch)
    assert len(download_shd(tmp_path, progress=False)) == 2
    assert attempts == []


@pytest.mark.parametrize("kind", ["archives", "decompressed"])
def test_files_put_in_place_are_verified_without_network(server, tmp_path, monkeypatch, kind):
    """Files fetched by hand into the folder are checked offline, not downloaded again."""
    url, store = server
    content = _publish(store)
    _as_published(store, monkeypatch, url)
    for name, data in content.items():
        if kind == "archives":
            (tmp_path / f"{name}.gz").write_bytes(store.files[f"data/{name}.gz"])
        else:
            (tmp_path / name).write_bytes(data)
    attempts = _no_network(monkeypatch)
    paths = download_shd(tmp_path, progress=False)
    assert [p.read_bytes() for p in paths] == [content["shd_train.h5"], content["shd_test.h5"]]
    assert attempts == [] and store.requests == []


def test_mismatching_archive_is_kept_renamed_not_deleted(server, tmp_path, caplog):
    """An archive that fails verification may be the user's only copy: renamed, then the
    verified one is downloaded beside it."""
    url, store = server
    content = _publish(store)
    mine = gzip.compress(b"a colleague's copy", mtime=0)
    (tmp_path / "shd_train.h5.gz").write_bytes(mine)
    (tmp_path / "shd_train.h5.gz.mismatch").write_bytes(b"an older one")
    download_shd(tmp_path, base_url=url, progress=False)
    assert (tmp_path / "shd_train.h5.gz.mismatch").read_bytes() == b"an older one"
    assert (tmp_path / "shd_train.h5.gz.mismatch.1").read_bytes() == mine
    assert (tmp_path / "shd_train.h5").read_bytes() == content["shd_train.h5"]
    assert "kept it as" in caplog.text


def test_mismatching_file_in_place_is_kept_even_when_the_download_fails(tmp_path, monkeypatch):
    monkeypatch.setattr(dl, "SHD_BASE_URL", f"http://127.0.0.1:{_closed_port()}/")
    (tmp_path / "shd_train.h5.gz").write_bytes(b"mine")
    with pytest.raises(DownloadError, match="could not reach host"):
        download_shd(tmp_path, timeout_s=5, progress=False)
    assert (tmp_path / "shd_train.h5.gz.mismatch").read_bytes() == b"mine"


def test_default_mode_rejects_archive_that_differs_from_published(server, tmp_path, monkeypatch):
    url, store = server
    _publish(store)
    monkeypatch.setattr(dl, "SHD_BASE_URL", url)
    # The built-in values (the real SHD's) cannot match the random test archives, even
    # though the server's own md5sums.txt matches them: the published values win.
    with pytest.warns(UserWarning, match="published value"), pytest.raises(ChecksumError):
        download_shd(tmp_path, progress=False)
    assert not any(p.name.startswith("shd_train") for p in tmp_path.iterdir())


def test_interrupted_transfer_keeps_nothing_and_next_run_starts_afresh(server, tmp_path):
    url, store = server
    content = _publish(store)
    store.truncate_after["data/shd_train.h5.gz"] = 200
    with pytest.raises(DownloadError, match="stopped part-way"):
        download_shd(tmp_path, base_url=url, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["md5sums.txt"]
    del store.truncate_after["data/shd_train.h5.gz"]
    download_shd(tmp_path, base_url=url, progress=False)
    assert (tmp_path / "shd_train.h5").read_bytes() == content["shd_train.h5"]


def test_checksum_mismatch_names_both_values_and_removes_bad_file(server, tmp_path):
    url, store = server
    _publish(store)
    expected = _md5(store.files["data/shd_test.h5.gz"])
    store.files["data/shd_test.h5.gz"] = tampered = gzip.compress(b"tampered", mtime=0)
    with pytest.raises(ChecksumError, match="shd_test.h5.gz") as info:
        download_shd(tmp_path, base_url=url, progress=False)
    message = str(info.value)
    assert expected in message and _md5(tampered) in message and "again" in message
    assert isinstance(info.value, MosaicnetError)
    assert not any(p.name.startswith("shd_test") for p in tmp_path.iterdir())
    assert not any(p.name.startswith("tmp") for p in tmp_path.iterdir())  # pooch's temp


def test_decompressed_checksum_mismatch_leaves_no_final_file(server, tmp_path):
    url, store = server
    _publish(store)
    listed = parse_md5sums(store.files["data/md5sums.txt"].decode())
    listed["shd_test.h5"] = "0" * 32
    store.files["data/md5sums.txt"] = "".join(f"{v}  {k}\n" for k, v in listed.items()).encode()
    with pytest.raises(ChecksumError, match=f"shd_test.h5.*{'0' * 32}"):
        download_shd(tmp_path, base_url=url, progress=False)
    assert not (tmp_path / "shd_test.h5").exists()
    assert not (tmp_path / "shd_test.h5.part").exists()


def test_listed_archive_that_is_not_gzip_is_a_clear_error(server, tmp_path):
    url, store = server
    _publish(store)
    store.files["data/shd_test.h5.gz"] = broken = b"not gzip at all"
    store.files["data/md5sums.txt"] = (
        f"{_md5(store.files['data/shd_train.h5.gz'])}  shd_train.h5.gz\n"
        f"{_md5(broken)}  shd_test.h5.gz\n"
    ).encode()
    with pytest.raises(DataFormatError, match="not a valid gzip archive"):
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
    assert store.requests == ["data/md5sums.txt"]
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
    assert store.requests == ["data/md5sums.txt"]
    assert sorted(p.name for p in tmp_path.iterdir())[-1] == "shd_train.h5.gz"  # no .part


def test_unreachable_host_says_how_to_download_by_hand(tmp_path):
    port = _closed_port()
    with pytest.raises(DownloadError) as info:
        download_shd(tmp_path, base_url=f"http://127.0.0.1:{port}/x/", timeout_s=5)
    message = str(info.value)
    assert f"could not reach host 127.0.0.1:{port}" in message
    assert f"http://127.0.0.1:{port}/x/shd_train.h5.gz" in message
    assert str(tmp_path) in message and "by hand" in message


@pytest.mark.parametrize(("status", "match"), [(404, "not found"), (503, "HTTP 503")])
def test_http_error_is_reported_with_status(server, tmp_path, status, match):
    url, store = server
    _publish(store)
    store.status["data/shd_train.h5.gz"] = status
    with pytest.raises(DownloadError, match=match) as info:
        download_shd(tmp_path, base_url=url, progress=False)
    assert "shd_train.h5.gz" in str(info.value) and "base_url" in str(info.value)


def _file_mirror(tmp_path) -> tuple[str, _Files, dict[str, bytes]]:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    store = _Files()
    content = _publish(store)
    for name, data in store.files.items():
        (mirror / name.removeprefix("data/")).write_bytes(data)
    return mirror.as_uri(), store, content


def test_file_url_mirror(tmp_path):
    url, _, content = _file_mirror(tmp_path)
    paths = download_shd(tmp_path / "out", base_url=url, progress=False)
    assert [p.read_bytes() for p in paths] == [content["shd_train.h5"], content["shd_test.h5"]]
    assert (tmp_path / "out" / "md5sums.txt").is_file()


def test_file_url_mirror_missing_archive(tmp_path):
    url, _, _ = _file_mirror(tmp_path)
    (tmp_path / "mirror" / "shd_test.h5.gz").unlink()
    with pytest.raises(DownloadError, match="shd_test.h5.gz was not found"):
        download_shd(tmp_path / "out", base_url=url, progress=False)


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


def test_missing_pooch_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pooch", None)  # makes `import pooch` fail
    with pytest.raises(DownloadError, match="pip install 'pooch>=1.8'"):
        download_shd(tmp_path, progress=False)


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


def test_progress_bar_on_stderr_only_when_asked(server, tmp_path, capsys):
    url, store = server
    _publish(store)
    download_shd(tmp_path, base_url=url, progress=True)
    assert "shd_train.h5.gz" in capsys.readouterr().err
    download_shd(tmp_path / "quiet", base_url=url, progress=False)
    assert capsys.readouterr().err == ""  # neither a bar nor pooch's own log lines


def test_cli_downloads_and_reports_errors(server, tmp_path, capsys):
    url, store = server
    content = _publish(store)
    target = tmp_path / "shd"
    assert main(["data", "download", "shd", "--to", str(target), "--base-url", url, "--quiet"]) == 0
    assert f"ready {target / 'shd_test.h5'}" in capsys.readouterr().out
    assert (target / "shd_train.h5").read_bytes() == content["shd_train.h5"]

    store.files["data/shd_test.h5.gz"] = gzip.compress(b"tampered", mtime=0)
    args = ["data", "download", "shd", "--to", str(tmp_path / "b"), "--base-url", url]
    assert main([*args, "--quiet"]) == 2
    assert "shd_test.h5.gz failed verification" in capsys.readouterr().err
