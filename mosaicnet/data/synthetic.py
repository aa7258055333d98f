"""Synthetic spoken-digit spike recordings in the exact SHD HDF5 layout.

The embedded default dataset for demos and tests: no machine here reaches the SHD host,
so :func:`write_synthetic_shd` writes ``shd_train.h5`` and ``shd_test.h5`` with the
datasets, dtypes and meaning of the real files (Cramer et al. 2022, IEEE TNNLS 33:2744;
layout documented at https://zenkelab.org/datasets/): 20 classes (English zero..nine,
German null..neun), 12 speakers of whom two (ids 4 and 5, as in SHD) appear only in the
test file, 700 channels.

How a sample is made (a caricature of a cochleagram, not a speech model):

* every class ("word") has a fixed template of 1-3 syllables; each syllable has three
  formant-like bands whose centre channel moves along a class-specific curved
  trajectory, plus, for some classes, a broad high-channel burst (a fricative);
* every speaker shifts all channels (vocal-tract length), speaks at its own tempo and
  loudness;
* every utterance adds onset delay, tempo and centre jitter, per-band loudness
  variation, spike-time jitter and uniform background spikes.

Spikes of a band are Poisson: their number is rate x duration, their times uniform within
the band, their channel Gaussian around the moving centre. Background spikes cover the
recording up to 0.1 s after the word (capped at 1.4 s). With the defaults a sample has
about 3650 spikes (min ~1600, max ~7400; about 1400 of them background) and lasts
0.46-1.40 s (mean 0.85 s), in SHD's range of thousands of spikes within ~1 s.

Default sizes: 1200 train / 400 test samples, class-balanced (60 and 20 per class); both
files together ~37 MB, written in a few seconds. The difficulty is set so a
nearest-centroid baseline is clearly above chance but far from perfect: 5-way 5-shot on the
held-out classes [11, 12, 4, 3, 0] of the default test file scores 61.6 % (std 6.5 % over
400 tasks; chance 20 %), see :mod:`mosaicnet.data.baseline`. Everything is drawn from
``numpy.random.SeedSequence`` streams spawned from ``seed``: the same seed gives identical
spike data, and the class templates, speakers and test file do not depend on ``n_train``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mosaicnet.errors import ConfigError, RunDirectoryError

#: Class words in SHD order: English digits are labels 0-9, German 10-19
#: (Cramer et al. 2022). Real files' ``/extra/keys`` are always read, never assumed.
LABEL_NAMES: tuple[str, ...] = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    "null", "eins", "zwei", "drei", "vier", "fuenf", "sechs", "sieben", "acht", "neun",
)  # fmt: skip

#: Root attribute that marks a file as written by this generator (JSON of its parameters).
SYNTHETIC_ATTR = "mosaicnet_synthetic"

TRAIN_FILE = "shd_train.h5"
TEST_FILE = "shd_test.h5"


@dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of the generator; every field is written into the files' attributes.

    Rates are spikes per second of the whole band (not per channel); channel widths
    are Gaussian standard deviations in channels.
    """

    seed: int = 0
    n_train: int = 1200
    n_test: int = 400
    n_channels: int = 700
    n_speakers: int = 12
    test_only_speakers: tuple[int, ...] = (4, 5)
    band_rate_hz: float = 1300.0
    band_width_channels: tuple[float, float] = (6.0, 16.0)
    speaker_shift_channels: float = 36.0
    speaker_tempo_spread: float = 0.12
    sample_tempo_spread: float = 0.12
    sample_centre_jitter_channels: float = 22.0
    sample_gain_spread: float = 0.3
    time_jitter_s: float = 0.008
    noise_rate_hz: float = 1500.0
    noise_tail_s: float = 0.1

    def validate(self) -> None:
        """Raise ConfigError for sizes or parameters the generator cannot honour."""
        if self.n_train < len(LABEL_NAMES) or self.n_test < len(LABEL_NAMES):
            raise ConfigError(
                f"n_train and n_test must be >= {len(LABEL_NAMES)} (one per class); "
                f"got {self.n_train} and {self.n_test}."
            )
        if self.n_channels < 100 or self.n_channels > 65535:
            raise ConfigError(f"n_channels must be in 100..65535, got {self.n_channels}.")
        if self.n_speakers < 3:
            raise ConfigError(f"n_speakers must be >= 3, got {self.n_speakers}.")
        bad = [s for s in self.test_only_speakers if not 0 <= s < self.n_speakers]
        if bad or len(self.test_only_speakers) >= self.n_speakers:
            raise ConfigError(
                f"test_only_speakers {self.test_only_speakers} must be distinct ids in "
                f"0..{self.n_speakers - 1} and leave at least one training speaker."
            )
        if min(self.band_rate_hz, self.noise_rate_hz, self.noise_tail_s) < 0:
            raise ConfigError("rates and durations must be >= 0.")


@dataclass(frozen=True)
class _Templates:
    """Per-class band parameters, flat over all bands of all classes (``cls`` says whose)."""

    cls: np.ndarray  # class of each band
    start_s: np.ndarray  # band onset relative to the word onset, at tempo 1
    dur_s: np.ndarray
    centre0: np.ndarray  # centre channel at band onset (fraction of n_channels)
    centre1: np.ndarray  # centre channel at band end (fraction)
    bend: np.ndarray  # mid-band excursion of the centre (fraction)
    width: np.ndarray  # channel standard deviation
    rate: np.ndarray  # spikes per second


# Formant ranges as fractions of the channel axis (low channels = low frequencies); the
# three bands overlap a little so that classes are not separable by one channel alone.
_FORMANT_RANGES = ((0.05, 0.35), (0.30, 0.65), (0.60, 0.92))


def _class_templates(rng: np.random.Generator, config: SyntheticConfig) -> _Templates:
    """Draw the word templates: 1-3 syllables x 3 formants (+ optional fricative)."""
    rows: list[tuple] = []
    lo_w, hi_w = config.band_width_channels
    for cls in range(len(LABEL_NAMES)):
        n_syllables = int(rng.integers(1, 4))
        word_s = rng.uniform(0.45, 0.75)
        # Syllable lengths: random proportions of the word, separated by short gaps.
        shares = rng.dirichlet(np.full(n_syllables, 3.0))
        gap_s = 0.04
        speech_s = word_s - gap_s * (n_syllables - 1)
        t = 0.0
        for share in shares:
            dur = speech_s * share
            for lo, hi in _FORMANT_RANGES:
                c0, c1 = rng.uniform(lo, hi, size=2)
                bend = rng.normal(0.0, 0.05)
                rows.append(
                    (cls, t, dur, c0, c1, bend, rng.uniform(lo_w, hi_w), config.band_rate_hz)
                )
            t += dur + gap_s
        if rng.random() < 0.4:
            # A fricative: a short, broad burst high on the channel axis at word start
            # or end (think "s" in six / sechs).
            at_end = rng.random() < 0.5
            dur = rng.uniform(0.08, 0.15)
            start = word_s - dur if at_end else 0.0
            centre = rng.uniform(0.75, 0.9)
            rows.append((cls, start, dur, centre, centre, 0.0, 45.0, config.band_rate_hz))
    cols = list(zip(*rows, strict=True))
    return _Templates(*(np.asarray(c, dtype=np.int64 if i == 0 else np.float64)
                        for i, c in enumerate(cols)))  # fmt: skip


@dataclass(frozen=True)
class _Speakers:
    shift: np.ndarray  # channels
    tempo: np.ndarray  # duration factor (> 1: slower)
    gain: np.ndarray  # loudness factor on band rates
    gender: np.ndarray  # bytes
    age: np.ndarray  # years
    body_height: np.ndarray  # metres


def _speakers(rng: np.random.Generator, config: SyntheticConfig) -> _Speakers:
    """Draw speaker profiles; meta info is plausible, not taken from SHD."""
    n = config.n_speakers
    female = rng.random(n) < 0.5
    # Shorter vocal tracts (on average female speakers) move formants up the axis.
    shift = rng.normal(0.0, config.speaker_shift_channels, n) + np.where(female, 10.0, -10.0)
    height = np.where(female, rng.normal(1.66, 0.06, n), rng.normal(1.80, 0.07, n))
    return _Speakers(
        shift=shift,
        tempo=np.exp(rng.normal(0.0, config.speaker_tempo_spread, n)),
        gain=np.exp(rng.normal(0.0, 0.15, n)),
        gender=np.where(female, b"female", b"male"),
        age=rng.integers(21, 57, n).astype(np.uint16),
        body_height=np.round(height, 2),
    )


def _utterance(
    rng: np.random.Generator,
    label: int,
    speaker: int,
    templates: _Templates,
    speakers: _Speakers,
    config: SyntheticConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """One sample's (times_s float32 sorted, units uint16); all bands drawn at once."""
    band = templates.cls == label
    n_bands = int(band.sum())
    tempo = speakers.tempo[speaker] * np.exp(rng.normal(0.0, config.sample_tempo_spread))
    onset = rng.uniform(0.02, 0.15)
    start = onset + templates.start_s[band] * tempo
    dur = templates.dur_s[band] * tempo
    gain = speakers.gain[speaker] * np.exp(rng.normal(0.0, config.sample_gain_spread, n_bands))
    counts = rng.poisson(templates.rate[band] * dur * gain)
    total = int(counts.sum())

    # Per-spike draws, expanded from per-band parameters with np.repeat.
    u = rng.random(total)
    rep = np.repeat(np.arange(n_bands), counts)
    n_ch = config.n_channels
    shift = speakers.shift[speaker] + rng.normal(0.0, config.sample_centre_jitter_channels)
    band_jitter = rng.normal(0.0, config.sample_centre_jitter_channels / 2, n_bands)
    c0 = templates.centre0[band][rep] * n_ch
    c1 = templates.centre1[band][rep] * n_ch
    bend = templates.bend[band][rep] * n_ch
    centre = c0 + (c1 - c0) * u + bend * np.sin(np.pi * u) + shift + band_jitter[rep]
    channel = np.rint(centre + rng.normal(0.0, 1.0, total) * templates.width[band][rep])
    time = start[rep] + u * dur[rep] + rng.normal(0.0, config.time_jitter_s, total)

    # Background spikes cover the recording: from 0 to a short tail after the word.
    noise_s = min(float(start.max() + dur.max()) + config.noise_tail_s, 1.4)
    n_noise = int(rng.poisson(config.noise_rate_hz * noise_s))
    time = np.concatenate((time, rng.uniform(0.0, noise_s, n_noise)))
    channel = np.concatenate((channel, rng.integers(0, n_ch, n_noise)))
    keep = (channel >= 0) & (channel < n_ch) & (time >= 0)
    time, channel = time[keep], channel[keep]
    order = np.argsort(time, kind="stable")  # SHD rows are sorted by time
    return time[order].astype(np.float32), channel[order].astype(np.uint16)


def _balanced_labels(rng: np.random.Generator, n: int) -> np.ndarray:
    """Class-balanced labels (counts differ by at most one), in random order."""
    labels = np.arange(n) % len(LABEL_NAMES)
    return rng.permutation(labels)


def _write_file(
    path: Path,
    config: SyntheticConfig,
    split: str,
    labels: np.ndarray,
    speaker_ids: np.ndarray,
    templates: _Templates,
    speakers: _Speakers,
    rng: np.random.Generator,
    progress: bool,
) -> None:
    """Write one split atomically: a temporary file renamed into place when complete."""
    import tables
    from tqdm import tqdm

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    filters = tables.Filters(complevel=5, complib="zlib", shuffle=True)
    try:
        with tables.open_file(str(tmp), mode="w", title="SHD-layout synthetic digits") as h5:
            spikes = h5.create_group("/", "spikes")
            times = h5.create_vlarray(spikes, "times", tables.Float32Atom(), filters=filters)
            units = h5.create_vlarray(spikes, "units", tables.UInt16Atom(), filters=filters)
            for label, speaker in tqdm(
                zip(labels, speaker_ids, strict=True),
                total=labels.size,
                desc=f"synthetic {split}",
                disable=not progress,
                leave=False,
            ):
                t, ch = _utterance(rng, int(label), int(speaker), templates, speakers, config)
                times.append(t)
                units.append(ch)
            h5.create_array("/", "labels", labels.astype(np.uint16))
            extra = h5.create_group("/", "extra")
            h5.create_array(extra, "speaker", speaker_ids.astype(np.uint16))
            h5.create_array(extra, "keys", np.array([n.encode() for n in LABEL_NAMES]))
            meta = h5.create_group(extra, "meta_info")
            h5.create_array(meta, "gender", speakers.gender)
            h5.create_array(meta, "age", speakers.age)
            h5.create_array(meta, "body_height", speakers.body_height)
            h5.root._v_attrs[SYNTHETIC_ATTR] = json.dumps({**asdict(config), "split": split})
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_synthetic_shd(
    out_dir: str | Path,
    *,
    seed: int = 0,
    n_train: int = 1200,
    n_test: int = 400,
    overwrite: bool = False,
    progress: bool = False,
    **params,
) -> tuple[Path, Path]:
    """Write ``shd_train.h5`` and ``shd_test.h5`` of synthetic spoken digits.

    Parameters
    ----------
    out_dir : str or Path
        Directory to write into (created if missing).
    seed : int
        Seed of every random draw; the same seed and parameters give identical spikes.
    n_train, n_test : int
        Number of samples, class-balanced (defaults: 60 and 20 per class).
    overwrite : bool
        Replace existing files. Without it an existing file is an error, so nothing a
        user made is silently overwritten.
    progress : bool
        Show a tqdm progress bar per file.
    **params
        Any other :class:`SyntheticConfig` field (e.g. ``noise_rate_hz``).

    Returns
    -------
    (train_path, test_path) : tuple of Path

    Raises
    ------
    RunDirectoryError
        A target file exists and ``overwrite`` is False.
    ConfigError
        Invalid sizes or parameters.
    """
    unknown = set(params) - set(SyntheticConfig.__dataclass_fields__)
    if unknown:
        raise ConfigError(
            f"unknown synthetic-data parameter(s) {sorted(unknown)}; valid ones are "
            f"{sorted(SyntheticConfig.__dataclass_fields__)}."
        )
    if "test_only_speakers" in params:
        params["test_only_speakers"] = tuple(int(s) for s in params["test_only_speakers"])
    config = SyntheticConfig(seed=int(seed), n_train=int(n_train), n_test=int(n_test), **params)
    config.validate()
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise RunDirectoryError(f"{out}: exists and is not a directory; choose a directory.")
    train_path, test_path = out / TRAIN_FILE, out / TEST_FILE
    existing = [p for p in (train_path, test_path) if p.exists()]
    if existing and not overwrite:
        raise RunDirectoryError(
            f"{', '.join(map(str, existing))} already exist(s); refusing to overwrite. "
            "Choose another directory, delete the file(s), or pass overwrite=True."
        )
    out.mkdir(parents=True, exist_ok=True)

    # Independent streams: templates and speakers never depend on the sample counts.
    streams = np.random.SeedSequence(config.seed).spawn(4)
    rng_templates, rng_speakers, rng_train, rng_test = map(np.random.default_rng, streams)
    templates = _class_templates(rng_templates, config)
    speakers = _speakers(rng_speakers, config)

    everyone = np.arange(config.n_speakers)
    train_speakers = np.setdiff1d(everyone, config.test_only_speakers)
    train_labels = _balanced_labels(rng_train, config.n_train)
    train_ids = rng_train.choice(train_speakers, size=config.n_train)
    test_labels = _balanced_labels(rng_test, config.n_test)
    # Every speaker appears in the test file; the held-out ones only there.
    test_ids = rng_test.permutation(np.arange(config.n_test) % config.n_speakers)

    _write_file(
        train_path, config, "train", train_labels, train_ids, templates, speakers, rng_train,
        progress,
    )  # fmt: skip
    _write_file(
        test_path, config, "test", test_labels, test_ids, templates, speakers, rng_test, progress
    )
    return train_path, test_path


def synthetic_parameters(path: str | Path) -> dict | None:
    """Generator parameters stored in a file, or None if this generator did not write it."""
    import tables

    try:
        with tables.open_file(str(path), mode="r") as h5:
            raw = h5.root._v_attrs[SYNTHETIC_ATTR] if SYNTHETIC_ATTR in h5.root._v_attrs else None
    except (OSError, tables.exceptions.HDF5ExtError):
        return None
    return json.loads(raw) if raw is not None else None


def ensure_synthetic_shd(
    out_dir: str | Path,
    *,
    seed: int = 0,
    n_train: int = 1200,
    n_test: int = 400,
    progress: bool = False,
) -> tuple[Path, Path]:
    """Return the synthetic default files in ``out_dir``, generating them if absent.

    Existing files are reused only when this generator wrote them with the same seed, sizes
    and (default) parameters; anything else in their place is an error rather than
    silently replaced.

    Raises
    ------
    RunDirectoryError
        ``out_dir`` holds one of the two files only, files from another source, or files
        generated with other parameters.
    """
    out = Path(out_dir)
    paths = (out / TRAIN_FILE, out / TEST_FILE)
    present = [p.exists() for p in paths]
    if not any(present):
        return write_synthetic_shd(
            out, seed=seed, n_train=n_train, n_test=n_test, progress=progress
        )
    # Compare every generator parameter (JSON round trip: tuples are stored as lists).
    config = SyntheticConfig(seed=int(seed), n_train=int(n_train), n_test=int(n_test))
    wanted = json.loads(json.dumps(asdict(config)))
    regenerate = (
        f"Regenerate them with write_synthetic_shd({str(out)!r}, seed={seed}, "
        f"n_train={n_train}, n_test={n_test}, overwrite=True) or use another directory."
    )
    for path, exists in zip(paths, present, strict=True):
        if not exists:
            raise RunDirectoryError(f"{path} is missing (its partner exists). {regenerate}")
        stored = synthetic_parameters(path)
        if stored is None:
            raise RunDirectoryError(
                f"{path} was not written by the synthetic generator; refusing to replace "
                f"it. {regenerate}"
            )
        differing = {k: stored.get(k) for k, v in wanted.items() if stored.get(k) != v}
        if differing:
            raise RunDirectoryError(
                f"{path} was generated with other parameters {differing} than asked "
                f"({ {k: wanted[k] for k in differing} }). {regenerate}"
            )
    return paths
