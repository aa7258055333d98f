"""Download the Spiking Heidelberg Digits (SHD) with checksum verification, through pooch.

The official archives ``shd_train.h5.gz`` and ``shd_test.h5.gz`` are served at
https://zenkelab.org/datasets/ (Cramer et al. 2020, "The Heidelberg Spiking Data Sets for
the Systematic Evaluation of Spiking Neural Networks", IEEE TNNLS, doi
10.1109/TNNLS.2020.3044364) with an ``md5sums.txt`` beside them. The transfer, the md5
check of each archive and the gunzip are pooch's (:func:`pooch.retrieve` with
``known_hash="md5:..."`` and :class:`pooch.Decompress`); this module decides which
checksums are trusted and what happens to files already in ``dest``.

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
A final name never holds an unverified file: pooch writes a download to a temporary
file in ``dest`` and moves it to its name only once its md5 matches (a mismatch deletes
the temporary file and raises :class:`ChecksumError`); the decompressed data is written
to ``<name>.part`` and moved into place only once verified. The verified ``.gz``
archives are kept next to the ``.h5`` files, so a decompressed file can always be
re-created and checked without the network. Files already in ``dest`` (left by an
earlier run or put there by hand, the ``.h5`` or the ``.gz``) are verified offline:
verified files are used as they are, and in the default mode a directory whose files
are all present and verified needs no network at all. A file in place that does not
match is never deleted (it may be the user's only copy): it is renamed to
``<name>.mismatch`` (``.mismatch.1``, ... when taken) and a verified one is made.

Interrupted transfers are not resumed
-------------------------------------
pooch restarts a download from its first byte: an interrupted transfer leaves nothing
behind and the next call downloads the whole archive again (about 130 MB for the
training set and 37 MB for the test set). That is the price of using pooch instead of
hand-written HTTP code with ``Range`` requests. Where the connection is too unreliable
for that, download the two ``.gz`` files with a resuming tool (``curl -C -``, ``wget
-c``) into ``dest`` and run the download again: they are verified and decompressed
offline.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
import re
import shutil
import urllib.parse
import urllib.request
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

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
        Show a tqdm progress bar for each archive transfer (on stderr).

    Returns
    -------
    list of Path
        ``[dest/shd_train.h5, dest/shd_test.h5]``, both verified.

    Raises
    ------
    DownloadError
        pooch is not installed, the host could not be reached (the message says how to
        download by hand), the server answered with an HTTP error, or a transfer was
        interrupted (nothing of it is kept; the next call downloads it again).
    ChecksumError
        A file does not match its checksum; the bad download has been removed.
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
    pooch = _import_pooch()
    dest.mkdir(parents=True, exist_ok=True)
    session = _Session(
        pooch=pooch,
        dest=dest,
        base_url=_normalise_base_url(base_url),
        mirror=base_url is not None,
        timeout_s=timeout_s,
        progress=progress,
    )
    with _quiet(pooch.get_logger()):
        # Resolve every checksum before transferring anything: a mirror whose list lacks
        # an entry should fail at once, not after a long download of the other file.
        expected = {name: session.expected(name) for name in SHD_FILES}
        paths = []
        for name in SHD_FILES:  # a loop, not a comprehension: keeps the warnings' stacklevel
            paths.append(session.obtain(name, expected[name]))
        return paths


def _import_pooch() -> ModuleType:
    """Import pooch, which does the transfers; its absence is a clear error."""
    try:
        import pooch
    except ImportError:
        raise DownloadError(
            "downloading SHD needs the package pooch, which is not installed; install it "
            "with `pip install 'pooch>=1.8'` (or reinstall mosaicnet, which requires it)."
        ) from None
    return pooch


@contextlib.contextmanager
def _quiet(pooch_logger: logging.Logger) -> Iterator[None]:
    """Hide pooch's own INFO lines (it logs every step to stderr); ours say what matters."""
    level = pooch_logger.level
    pooch_logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        pooch_logger.setLevel(level)


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


def _keep_aside(path: Path) -> None:
    """Rename a file that failed verification to a free ``.mismatch`` name; never delete.

    It may be the user's only copy (a file from a colleague, a hand download) and the
    download that replaces it may yet fail (offline).
    """
    kept = path.with_name(path.name + ".mismatch")
    number = 0
    while kept.exists():
        number += 1
        kept = path.with_name(f"{path.name}.mismatch.{number}")
    path.rename(kept)
    logger.warning(
        "%s does not match its checksum; kept it as %s (delete it if you do not need it)",
        path,
        kept,
    )


class _NotFound(Exception):
    """Internal: the server has no such resource (HTTP 404 / missing file)."""


@dataclass
class _Session:
    """State of one :func:`download_shd` call (the checksum list is fetched lazily)."""

    pooch: ModuleType
    dest: Path
    base_url: str
    mirror: bool
    timeout_s: float
    progress: bool
    _server_list: dict[str, str] | None = field(default=None, init=False)
    _server_list_fetched: bool = field(default=False, init=False)

    # -- checksums -----------------------------------------------------------------------

    def md5(self, path: Path) -> str:
        """Return the hex md5 digest of a file (pooch reads it in chunks)."""
        return self.pooch.file_hash(str(path), alg="md5")

    def server_list(self) -> dict[str, str] | None:
        """Fetch, save and parse ``md5sums.txt`` once; ``None`` when the server has none."""
        if self._server_list_fetched:
            return self._server_list
        self._server_list_fetched = True
        url = self.base_url + CHECKSUM_LIST
        target = self.dest / CHECKSUM_LIST
        part = target.with_name(target.name + ".part")
        try:
            # Small, and what is verified against: always fetched afresh, never cached.
            self.transfer(url, part, show=False)
        except _NotFound:
            part.unlink(missing_ok=True)
            if self.mirror:
                raise ChecksumError(
                    f"{url} does not exist; a mirror given with base_url must serve "
                    f"{CHECKSUM_LIST} beside the archives so the download can be "
                    f"verified. Add it there (md5sum shd_*.h5.gz shd_*.h5 > {CHECKSUM_LIST})"
                    " or omit base_url to use the official host."
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
            # Default mode verifies against the built-in values; a broken record on the
            # server must not block the download.
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
            and self.md5(target) == expected.data_md5
        ):
            logger.info("%s already present and verified; skipped", target)
            return target
        if archive.is_file() and self.md5(archive) == expected.archive_md5:
            logger.info("%s already present and verified; decompressing it", archive)
        else:
            if archive.exists():
                _keep_aside(archive)  # pooch would overwrite it
            if not self.mirror:
                self.warn_if_server_disagrees(archive.name)
        part = target.with_name(target.name + ".part")
        # Ours, from an interrupted run; Decompress would otherwise keep it as it is.
        part.unlink(missing_ok=True)
        self.retrieve(archive, expected.archive_md5, part)
        actual = self.md5(part)
        if expected.data_md5 is not None and actual != expected.data_md5:
            part.unlink()
            raise ChecksumError(
                f"{archive} decompressed to content with md5 {actual} but "
                f"{expected.data_md5} was expected for {target.name}; the bad file was "
                f"removed. Delete {archive} and download again."
            )
        if target.exists():
            # Without a published value for the content, the verified archive defines it:
            # an existing file with that content is the same file.
            if target.is_file() and self.md5(target) == actual:
                part.unlink()
                return target
            _keep_aside(target)
        os.replace(part, target)
        return target

    def retrieve(self, archive: Path, archive_md5: str, part: Path) -> None:
        """Have pooch fetch (or verify in place) ``archive`` and gunzip it into ``part``."""
        url = self.base_url + archive.name
        try:
            self.pooch.retrieve(
                url,
                known_hash=f"md5:{archive_md5}",
                fname=archive.name,
                path=self.dest,
                downloader=self.transfer,
                processor=self.pooch.Decompress(method="gzip", name=part.name),
            )
        except _NotFound as missing:
            raise DownloadError(
                f"{url} was not found ({missing}); check base_url ({self.base_url!r}): it "
                f"must be the folder that holds {archive.name}."
            ) from None
        except (gzip.BadGzipFile, EOFError, zlib.error) as error:
            part.unlink(missing_ok=True)
            raise DataFormatError(
                f"{archive} is not a valid gzip archive ({error}) although its md5 matches "
                f"{archive_md5}; the checksum list of {self.base_url} describes a damaged "
                "file. Delete it and use another mirror (base_url) or the official host."
            ) from None
        except ValueError as error:
            # pooch's hash check; its message names the expected and the actual md5.
            raise ChecksumError(
                f"{url} failed verification: {error} Run the download again; if it fails "
                "the same way, the server's copy differs from the published one (try "
                "another mirror with base_url)."
            ) from None

    # -- transfer ------------------------------------------------------------------------

    def transfer(
        self, url: str, output_file: str | Path, _pooch: object = None, *, show: bool = True
    ) -> None:
        """Write the resource at ``url`` to ``output_file``: a pooch downloader.

        pooch has no downloader for ``file://`` URLs (a folder used as a mirror), so those
        are copied here; ``http(s)`` goes through :class:`pooch.HTTPDownloader` with a
        progress bar named after the file.
        """
        from tqdm.auto import tqdm  # imported here: keeps importing this module cheap

        parts = urllib.parse.urlsplit(url)
        if parts.scheme == "file":
            try:
                shutil.copyfile(urllib.request.url2pathname(parts.path), output_file)
            except FileNotFoundError:
                raise _NotFound("no such file") from None
            except OSError as error:
                raise DownloadError(f"could not copy {url} ({error}).") from None
            return
        import requests

        name = parts.path.rsplit("/", 1)[-1]
        with tqdm(
            # pooch sets the total from Content-Length but first tests the bar's truth,
            # which tqdm refuses without a total: any positive placeholder will do.
            total=1,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=name,
            disable=not (show and self.progress),
        ) as bar:
            downloader = self.pooch.HTTPDownloader(
                progressbar=bar if not bar.disable else False,
                chunk_size=_CHUNK_BYTES,
                timeout=self.timeout_s,
                headers={"User-Agent": f"mosaicnet/{__version__}"},
            )
            try:
                downloader(url, str(output_file), None)
            except requests.exceptions.HTTPError as error:
                code = error.response.status_code
                if code == 404:
                    raise _NotFound("HTTP 404") from None
                raise DownloadError(
                    f"{url} answered HTTP {code} {error.response.reason}; check the URL "
                    f"(base_url={self.base_url!r}) or try again later."
                ) from None
            except requests.exceptions.ConnectionError as error:  # also connect timeouts
                raise DownloadError(self.unreachable_message(url, error)) from None
            except requests.exceptions.RequestException as error:  # read timeout, cut short
                raise DownloadError(self.interrupted_message(url, error)) from None

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

    def interrupted_message(self, url: str, reason: object) -> str:
        """Say that a transfer stopped part-way and what the next run does."""
        return (
            f"the transfer of {url} stopped part-way ({reason}); nothing of it was kept. "
            f"Run the download again (it starts the file afresh); on an unreliable "
            f"connection, fetch it with a resuming tool (curl -C - or wget -c) into "
            f"{self.dest} and run the download again to verify it offline."
        )
