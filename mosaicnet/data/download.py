"""Download the Spiking Heidelberg Digits (SHD) with checksum verification.

The official archives ``shd_train.h5.gz`` and ``shd_test.h5.gz`` are served at
https://zenkelab.org/datasets/ (Cramer et al. 2020, "The Heidelberg Spiking Data Sets for
the Systematic Evaluation of Spiking Neural Networks", IEEE TNNLS, doi
10.1109/TNNLS.2020.3044364) with an ``md5sums.txt`` beside them.

Which checksums are trusted
---------------------------
* **Default (no ``base_url``)**: the published md5 values built into this module
  (:data:`PUBLISHED_MD5`) are authoritative for both the archives and the decompressed
  files. ``md5sums.txt`` is fetched as well when a download is needed and saved beside
  the data as a record; if it disagrees with the built-in values a warning says so and
  verification still uses the built-in values (a changed file on the official host is
  more likely a problem than an update we should accept silently).
* **With ``base_url``** (a mirror, a local server, a ``file://`` folder): the
  ``md5sums.txt`` served there is required and authoritative; an archive without an
  entry is an error, since an unverifiable download is not accepted. A decompressed file
  is verified against the list's entry for it when there is one, otherwise against the
  published value when the mirror's archive is the published one; otherwise only the
  gzip CRC checks it. To trust the official host's current list instead of the built-in
  values, pass ``base_url="https://zenkelab.org/datasets/"`` explicitly.

Files and their states
----------------------
Everything is first written to ``<name>.part`` and moved to its final name with
:func:`os.replace` only once verified, so a final name never holds a half-written or
unverified file. An interrupted transfer keeps its ``.part``; the next call resumes it
with an HTTP ``Range`` request, or restarts cleanly when the server ignores ranges. A
checksum mismatch deletes the ``.part`` and raises :class:`ChecksumError`. The verified
``.gz`` archives are kept next to the ``.h5`` files, so a decompressed file can always
be re-created and checked without the network. Verified files already present are
skipped, and in the default mode a directory whose files are all present and verified
needs no network at all: archives fetched by hand into ``dest`` are verified and
decompressed offline.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import logging
import os
import re
import struct
import urllib.error
import urllib.parse
import urllib.request
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mosaicnet import __version__
from mosaicnet.errors import ConfigError, DataFormatError, MosaicnetError

logger = logging.getLogger(__name__)

SHD_BASE_URL = "https://zenkelab.org/datasets/"
"""Official location of the SHD archives (Cramer et al. 2020; zenkelab.org/datasets)."""

SHD_FILES: tuple[str, ...] = ("shd_train.h5", "shd_test.h5")
"""Decompressed file names, in the order :func:`download_shd` returns them."""

CHECKSUM_LIST = "md5sums.txt"
"""Name of the checksum list the SHD host serves beside the archives."""

PUBLISHED_MD5: dict[str, str] = {
    "shd_train.h5.gz": "d47c9825dee33347913e8ce0f2be08b0",
    "shd_test.h5.gz": "3062a80ec0c5719404d5b02e166543b1",
    "shd_train.h5": "8e9877c85f29a28dd353ea6a54402667",
    "shd_test.h5": "207ad1295a0ab611e22d1734989c254e",
}
"""Published md5 of the SHD archives and of their decompressed files.

Source: norse (https://github.com/norse/norse), ``norse/dataset/spiking_heidelberg.py``,
class ``SpikingHeidelbergDigits`` (``train_checksum``/``test_checksum`` for the ``.gz``
archives, ``train_file_md5``/``test_file_md5`` for the ``.h5`` files).
"""

_CHUNK_BYTES = 1 << 20  # 1 MiB: large enough for throughput, small enough for a smooth bar
_MD5_RE = re.compile(r"^[0-9a-fA-F]{32}$")


class DownloadError(MosaicnetError):
    """A download could not be completed (host unreachable, HTTP error, interrupted)."""


class ChecksumError(DownloadError, DataFormatError):
    """A downloaded or decompressed file does not have the expected md5 checksum."""


@dataclass(frozen=True)
class _Expected:
    """The md5 values one SHD file is verified against (``None``: not known)."""

    archive_md5: str
    data_md5: str | None


def download_shd(
    dest: Path,
    *,
    base_url: str | None = None,
    timeout_s: float = 30.0,
    progress: bool = True,
) -> list[Path]:
    """Download, verify and decompress the SHD train and test files into ``dest``.

    Parameters
    ----------
    dest
        Directory for the files (created if missing). It receives ``shd_train.h5``,
        ``shd_test.h5``, the verified archives ``shd_*.h5.gz`` and ``md5sums.txt``.
    base_url
        Where the archives are served; default the official host :data:`SHD_BASE_URL`
        with the built-in published checksums. When given, the ``md5sums.txt`` served
        there is required and used (see the module docstring for the policy). ``http``,
        ``https`` and ``file`` URLs are accepted.
    timeout_s
        Socket timeout in seconds for connecting and for each read.
    progress
        Show tqdm progress bars for transfers and decompression.

    Returns
    -------
    list of Path
        ``[dest/shd_train.h5, dest/shd_test.h5]``, both verified.

    Raises
    ------
    DownloadError
        The host could not be reached (the message says how to download by hand), the
        server answered with an HTTP error, or a transfer was interrupted (the partial
        file is kept and the next call resumes it).
    ChecksumError
        A file does not match its checksum; the bad partial file has been removed.
    ConfigError
        ``dest`` is not a directory, ``base_url`` is malformed or ``timeout_s`` <= 0.
    DataFormatError
        A checksum list or an archive is malformed.
    """
    dest = Path(dest)
    if timeout_s <= 0:
        raise ConfigError(f"timeout_s must be positive, got {timeout_s}; pass e.g. 30.")
    if dest.exists() and not dest.is_dir():
        raise ConfigError(
            f"download destination {dest} exists and is not a directory; "
            "pass a directory path (it is created if missing)."
        )
    dest.mkdir(parents=True, exist_ok=True)
    session = _Session(
        dest=dest,
        base_url=_normalise_base_url(base_url),
        mirror=base_url is not None,
        timeout_s=timeout_s,
        progress=progress,
    )
    # Resolve every checksum before transferring anything: a mirror whose list lacks an
    # entry should fail at once, not after a long download of the other file.
    expected = {name: session.expected(name) for name in SHD_FILES}
    return [session.obtain(name, expected[name]) for name in SHD_FILES]


def _free_name(path: Path) -> Path:
    """``path``, or ``path`` with ``.1``, ``.2``, ... appended: a name not taken yet."""
    candidate, number = path, 0
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.name}.{number}")
    return candidate


def file_md5(path: Path) -> str:
    """Return the hex md5 digest of a file, read in chunks (files can be GBs)."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def parse_md5sums(text: str, *, source: str = CHECKSUM_LIST) -> dict[str, str]:
    """Parse a checksum list into ``{file name: lowercase md5}``.

    Accepts the GNU ``md5sum`` format (``<md5>  <name>`` or ``<md5> *<name>``) and the
    BSD format (``MD5 (<name>) = <md5>``). Names are reduced to their base name, so
    ``./shd_train.h5.gz`` and ``datasets/shd_train.h5.gz`` both key ``shd_train.h5.gz``.
    Blank lines and ``#`` comments are ignored.

    Raises
    ------
    DataFormatError
        A line is in neither format, or one name is listed with two different values.
    """
    entries: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        bsd = re.fullmatch(r"MD5\s*\((.+)\)\s*=\s*([0-9a-fA-F]{32})", line)
        if bsd:
            name, value = bsd.group(1), bsd.group(2)
        else:
            parts = line.split(maxsplit=1)
            if len(parts) != 2 or not _MD5_RE.match(parts[0]):
                raise DataFormatError(
                    f"{source} line {number} is not '<md5>  <file name>': {raw!r}; "
                    "fix or remove the checksum list."
                )
            value, name = parts[0], parts[1].lstrip("*")
        name = name.strip().replace("\\", "/").rsplit("/", 1)[-1]
        value = value.lower()
        if entries.get(name, value) != value:
            raise DataFormatError(
                f"{source} lists {name} twice with different md5 values "
                f"({entries[name]} and {value}); fix the checksum list."
            )
        entries[name] = value
    return entries


def _normalise_base_url(base_url: str | None) -> str:
    """Return ``base_url`` (default: the official host) with exactly one trailing slash."""
    url = SHD_BASE_URL if base_url is None else base_url.strip()
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in {"http", "https", "file"}:
        raise ConfigError(
            f"base_url {base_url!r} must be an http://, https:// or file:// URL, "
            f"e.g. {SHD_BASE_URL}"
        )
    return url.rstrip("/") + "/"


@dataclass
class _Session:
    """State of one :func:`download_shd` call (the checksum list is fetched lazily)."""

    dest: Path
    base_url: str
    mirror: bool
    timeout_s: float
    progress: bool
    _server_list: dict[str, str] | None = None
    _server_list_fetched: bool = False

    # -- checksums -----------------------------------------------------------------------

    def server_list(self) -> dict[str, str] | None:
        """Fetch, save and parse ``md5sums.txt`` once; ``None`` when the server has none."""
        if not self._server_list_fetched:
            self._server_list_fetched = True
            url = self.base_url + CHECKSUM_LIST
            target = self.dest / CHECKSUM_LIST
            part = _part_path(target)
            part.unlink(missing_ok=True)  # small: never worth resuming, always re-fetch
            try:
                self.fetch(url, part, resume=False, show=False)
            except _NotFound:
                part.unlink(missing_ok=True)
                if self.mirror:
                    raise ChecksumError(
                        f"{url} does not exist; a mirror given with base_url must serve "
                        f"{CHECKSUM_LIST} beside the archives so the download can be "
                        "verified. Add it there (md5sum shd_*.h5.gz shd_*.h5 > "
                        f"{CHECKSUM_LIST}) or omit base_url to use the official host."
                    ) from None
                logger.info("%s not served; using the built-in published checksums", url)
                return None
            text = part.read_text(encoding="utf-8", errors="replace")
            try:
                self._server_list = parse_md5sums(text, source=url)
            except DataFormatError:
                part.unlink()
                if self.mirror:
                    raise
                # Default mode verifies against the built-in values; a broken record on
                # the server must not block the download.
                logger.warning("%s is malformed; using the built-in checksums", url)
                return None
            os.replace(part, target)
        return self._server_list

    def expected(self, name: str) -> _Expected:
        """Return the checksums ``name`` (e.g. ``shd_train.h5``) is verified against."""
        archive = name + ".gz"
        if not self.mirror:
            return _Expected(PUBLISHED_MD5[archive], PUBLISHED_MD5[name])
        listed = self.server_list() or {}
        if archive not in listed:
            raise ChecksumError(
                f"{self.base_url}{CHECKSUM_LIST} has no entry for {archive}, so the "
                f"download cannot be verified; add '<md5>  {archive}' to that list "
                "or omit base_url to use the official host and the published checksums."
            )
        data_md5 = listed.get(name)
        if data_md5 is None and listed[archive] == PUBLISHED_MD5[archive]:
            data_md5 = PUBLISHED_MD5[name]  # same archive as published -> same content
        return _Expected(listed[archive], data_md5)

    def warn_if_server_disagrees(self, archive: str) -> None:
        """Default mode: warn when the official list no longer matches the built-in one."""
        listed = (self.server_list() or {}).get(archive)
        if listed is not None and listed != PUBLISHED_MD5[archive]:
            warnings.warn(
                f"{self.base_url}{CHECKSUM_LIST} lists md5 {listed} for {archive} but the "
                f"published value is {PUBLISHED_MD5[archive]}; verifying against the "
                f"published value. To trust the server's list instead, pass "
                f"base_url={self.base_url!r} explicitly.",
                stacklevel=4,
            )

    # -- one file ------------------------------------------------------------------------

    def obtain(self, name: str, expected: _Expected) -> Path:
        """Make ``dest/name`` present and verified against ``expected``; return its path."""
        target = self.dest / name
        archive = self.dest / (name + ".gz")
        if (
            expected.data_md5 is not None
            and target.is_file()
            and file_md5(target) == expected.data_md5
        ):
            logger.info("%s already present and verified; skipped", target)
            return target
        if not (archive.is_file() and file_md5(archive) == expected.archive_md5):
            self.download_archive(archive, expected.archive_md5)
        data_md5 = expected.data_md5
        if data_md5 is None:
            # Nothing published for the content: the verified archive defines it, which
            # still lets an existing decompressed file be checked and skipped.
            data_md5 = _gunzipped_md5(archive)
            if target.is_file() and file_md5(target) == data_md5:
                return target
        if target.exists():
            logger.warning("%s does not match its checksum; re-creating it", target)
        _decompress(archive, target, data_md5, progress=self.progress)
        return target

    def download_archive(self, archive: Path, archive_md5: str) -> None:
        """Fetch ``archive`` into its ``.part`` (resuming), verify, move into place."""
        if archive.exists():
            # Kept, not deleted: it may be the user's only copy (e.g. a file from a
            # colleague) and the download below may fail (offline).
            kept = _free_name(archive.with_name(archive.name + ".mismatch"))
            archive.rename(kept)
            logger.warning(
                "%s does not match its checksum; kept it as %s and downloading it again",
                archive,
                kept,
            )
        if not self.mirror:
            self.warn_if_server_disagrees(archive.name)
        url = self.base_url + archive.name
        part = _part_path(archive)
        resumed = part.is_file() and part.stat().st_size > 0
        try:
            self.fetch(url, part, resume=True, show=self.progress)
            actual = file_md5(part)
            if actual != archive_md5 and resumed:
                # The kept bytes may come from an earlier, different or damaged transfer:
                # one clean download decides whether the server's file itself is bad.
                logger.warning("resumed %s failed verification; downloading it afresh", url)
                part.unlink()
                self.fetch(url, part, resume=False, show=self.progress)
                actual = file_md5(part)
        except _NotFound as missing:
            raise DownloadError(
                f"{url} was not found ({missing.reason}); check base_url "
                f"({self.base_url!r}): it must be the folder that holds {archive.name}."
            ) from None
        if actual != archive_md5:
            part.unlink()
            raise ChecksumError(
                f"{url} downloaded with md5 {actual} but {archive_md5} was expected; the "
                f"bad file was removed. Run the download again; if it fails the same way, "
                f"the server's copy differs from the published one (try another mirror "
                f"with base_url)."
            )
        os.replace(part, archive)

    # -- transfer ------------------------------------------------------------------------

    def fetch(self, url: str, part: Path, *, resume: bool, show: bool) -> None:
        """Write the resource at ``url`` to ``part``, appending to it when resuming."""
        offset = part.stat().st_size if resume and part.is_file() else 0
        request = urllib.request.Request(url, headers={"User-Agent": f"mosaicnet/{__version__}"})
        if offset:
            request.add_header("Range", f"bytes={offset}-")
        try:
            response = urllib.request.urlopen(request, timeout=self.timeout_s)
        except urllib.error.HTTPError as error:
            error.close()
            if error.code == 416 and offset:
                # Range past the end: the part is complete (or too long); the caller's
                # checksum decides, and a resumed mismatch is re-fetched from scratch.
                return
            if error.code == 404:
                raise _NotFound("HTTP 404") from None
            raise DownloadError(
                f"{url} answered HTTP {error.code} {error.reason}; check the URL "
                f"(base_url={self.base_url!r}) or try again later."
            ) from None
        except urllib.error.URLError as error:
            if isinstance(error.reason, FileNotFoundError):
                raise _NotFound("no such file") from None  # file:// mirrors
            raise DownloadError(self.unreachable_message(url, error.reason)) from None
        except (TimeoutError, OSError, http.client.HTTPException) as error:
            raise DownloadError(self.unreachable_message(url, error)) from None
        with response:
            status = response.getcode()
            append = offset > 0 and status == 206 and _range_starts_at(response, offset)
            if offset and not append:
                logger.info("%s: server did not resume at byte %d; restarting", url, offset)
            length = response.headers.get("Content-Length")
            remaining = int(length) if length and length.isdigit() else None
            start = offset if append else 0
            total = start + remaining if remaining is not None else None
            received = 0
            from tqdm.auto import tqdm  # imported here: keeps importing this module cheap

            with (
                open(part, "ab" if append else "wb") as handle,
                tqdm(
                    total=total,
                    initial=start,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=part.name.removesuffix(".part"),
                    disable=not show,
                ) as bar,
            ):
                try:
                    for chunk in _chunks(response):
                        handle.write(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
                except (TimeoutError, OSError, http.client.HTTPException) as error:
                    raise DownloadError(
                        self.interrupted_message(url, part, start + received, error)
                    ) from None
            if remaining is not None and received < remaining:
                raise DownloadError(
                    self.interrupted_message(url, part, start + received, "connection closed")
                )

    # -- messages ------------------------------------------------------------------------

    def unreachable_message(self, url: str, reason: object) -> str:
        """Say that the host is unreachable and how to fetch the files by hand."""
        host = urllib.parse.urlsplit(url).netloc or url
        archives = ", ".join(self.base_url + name + ".gz" for name in SHD_FILES)
        return (
            f"could not reach host {host} to download {url} ({reason}). Without network "
            f"access, download by hand {archives} (and {self.base_url}{CHECKSUM_LIST}) on "
            f"a machine that has it, put the .gz files in {self.dest}, then run "
            f"`mosaicnet data download shd --to {self.dest}` again: archives already "
            f"there are verified and decompressed without the network."
        )

    @staticmethod
    def interrupted_message(url: str, part: Path, done: int, reason: object) -> str:
        """Say that a transfer stopped part-way and that the next run resumes it."""
        return (
            f"the transfer of {url} stopped after {done} bytes ({reason}); the partial "
            f"file {part} was kept and running the download again resumes it."
        )


class _NotFound(Exception):
    """Internal: the server has no such resource (HTTP 404 / missing file)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _part_path(path: Path) -> Path:
    """Return the temporary name a file is written under before it is verified."""
    return path.with_name(path.name + ".part")


def _range_starts_at(response: http.client.HTTPResponse, offset: int) -> bool:
    """Return whether a 206 response's ``Content-Range`` begins at ``offset``."""
    header = response.headers.get("Content-Range", "")
    match = re.match(r"bytes\s+(\d+)-", header)
    return bool(match) and int(match.group(1)) == offset


def _chunks(response: http.client.HTTPResponse) -> Iterator[bytes]:
    """Yield the body of ``response`` in fixed-size chunks."""
    while chunk := response.read(_CHUNK_BYTES):
        yield chunk


def _gzip_isize(archive: Path) -> int | None:
    """Return the uncompressed size recorded in a gzip trailer (mod 2**32), if readable."""
    try:
        with open(archive, "rb") as handle:
            handle.seek(-4, os.SEEK_END)
            return struct.unpack("<I", handle.read(4))[0]
    except OSError:
        return None


def _gunzip_chunks(archive: Path) -> Iterator[bytes]:
    """Yield the decompressed content of ``archive``; a damaged archive is a clear error."""
    try:
        with gzip.open(archive, "rb") as stream:
            while chunk := stream.read(_CHUNK_BYTES):
                yield chunk
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise DataFormatError(
            f"{archive} is not a valid gzip archive ({error}); delete it and download again."
        ) from None


def _gunzipped_md5(archive: Path) -> str:
    """Return the md5 of the decompressed content of ``archive`` without writing it."""
    digest = hashlib.md5()
    for chunk in _gunzip_chunks(archive):
        digest.update(chunk)
    return digest.hexdigest()


def _decompress(archive: Path, target: Path, data_md5: str, *, progress: bool) -> None:
    """Gunzip ``archive`` into ``target.part``, verify ``data_md5``, then move into place."""
    from tqdm.auto import tqdm

    part = _part_path(target)
    digest = hashlib.md5()
    try:
        with (
            open(part, "wb") as handle,
            tqdm(
                total=_gzip_isize(archive),
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=f"gunzip {archive.name}",
                disable=not progress,
            ) as bar,
        ):
            for chunk in _gunzip_chunks(archive):
                handle.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    if digest.hexdigest() != data_md5:
        part.unlink()
        raise ChecksumError(
            f"{archive} decompressed to content with md5 {digest.hexdigest()} but "
            f"{data_md5} was expected for {target.name}; the bad file was removed. Delete "
            f"{archive} and download again."
        )
    os.replace(part, target)
