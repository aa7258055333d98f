"""N-way K-shot few-shot tasks drawn from a spike dataset, seeded and batched into tensors.

Protocol (docs/data.md, 'Few-shot tasks', after the published code, EIS-Hub/meta-mosaic,
and the NICE 2024 abstract): the classes ``held_out = (11, 12, 4, 3, 0)`` never appear in
meta-training; meta-training tasks come from the SHD *train* file over the other 15
classes; meta-test tasks come from the *test* file over all 20 classes, and every query
is marked seen (its class was meta-trained) or unseen. Meta-test can also be restricted
to the unseen or the seen classes only.

A task picks ``n_way`` distinct classes in random order (task-local label ``j`` is
``classes[j]``) and, for each class, ``k_shot + n_query`` distinct recordings, the first
``k_shot`` for the support set and the rest for the query set. Sets are class-major:
support item ``j * k_shot + s`` is shot ``s`` of task-local class ``j``.

Spatial sampling augmentation (stride ``k > 1``): every recording has ``k`` views, the
channels ``offset, offset + k, ...`` for ``offset = 0..k-1``. Each sampled recording uses
**one** view, drawn at random (or the fixed ``view_offset``). Because a recording is drawn
at most once per task, views of one recording can never sit in both the support and the
query set of a task; the published code treated views as independent samples and leaked
exactly that way (docs/meta_learning.md, 'Faults of the published code avoided').

Shift augmentation (``channel_shift = s > 0``): every sampled recording is also moved
along the channel axis of its view by a shift drawn uniformly from ``-s..s`` columns,
zeros filling the emptied edge (docs/data.md, 'Shift augmentation'). Meant for
meta-training tasks only.

Reproducibility: task ``i`` of a sampler depends only on ``(seed, split, i)``, through
its own :class:`numpy.random.SeedSequence` stream, so it is identical whether it is drawn
in a batch of 1 or of 256, and :meth:`TaskSampler.sample` simply walks task ids
0, 1, 2, ...
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Protocol

import numpy as np

from mosaicnet.errors import ConfigError, DataFormatError

if TYPE_CHECKING:  # torch is imported lazily so that `import mosaicnet.data` stays light
    import torch

SPLITS: tuple[str, ...] = ("meta-train", "meta-test", "meta-test-unseen", "meta-test-seen")
"""Task sources: which classes a sampler draws from (see :class:`TaskSampler`)."""

PUBLISHED_HELD_OUT: tuple[int, ...] = (11, 12, 4, 3, 0)
"""SHD labels held out of meta-training in the published work (EIS-Hub/meta-mosaic)."""


class FewShotDataset(Protocol):
    """What :class:`TaskSampler` needs from a dataset (``mosaicnet.data.SpikeDataset``)."""

    labels: np.ndarray
    label_names: dict[int, str]

    @property
    def n_classes(self) -> int: ...

    def binned(
        self, indices, *, n_bins: int, window_s: float, stride: int, offset, dtype
    ) -> torch.Tensor:
        """Counts ``(len(indices), n_bins, width)``; ``offset``: one view per index."""


@dataclass(frozen=True)
class FewShotConfig:
    """Shape of the few-shot tasks and of their input tensors.

    Parameters
    ----------
    n_way : int
        Classes per task (N). The talk uses 5-way tasks.
    k_shot : int
        Support recordings per class (K). The talk uses 5-shot tasks.
    n_query : int
        Query recordings per class (Q). The published code sets the query size equal
        to K (its default K is 10); the default here follows that rule with the talk's
        K = 5.
    held_out : tuple of int
        Labels never used for meta-training; the published choice is ``(11, 12, 4, 3, 0)``.
    stride : int
        Spatial sampling interval k; 1 uses all channels, the published code uses 3
        (700 channels -> views of 234 channels, zero-padded).
    view_offset : int or None
        With ``stride > 1``: ``None`` draws each recording's view at random (the
        augmentation); an offset in ``0..stride-1`` always uses that view (e.g. a fixed
        evaluation input).
    n_bins : int
        Time bins per recording; 100 over ``window_s`` in the published preprocessing.
    window_s : float
        Binned window in seconds, 1.4 s in the published preprocessing.
    channel_shift : int
        Largest shift, in columns of the view, of the shift augmentation: each
        recording of a task is moved by a shift drawn uniformly from
        ``-channel_shift..channel_shift`` (spike ``c`` lands in column ``c + shift``;
        columns shifted out are lost, emptied ones are zero). 0 (default, published):
        no shift, and the random stream of the tasks is that of the published
        protocol.
    """

    n_way: int = 5
    k_shot: int = 5
    n_query: int = 5
    held_out: tuple[int, ...] = PUBLISHED_HELD_OUT
    stride: int = 1
    view_offset: int | None = None
    n_bins: int = 100
    window_s: float = 1.4
    channel_shift: int = 0

    def __post_init__(self) -> None:
        for name in ("n_way", "k_shot", "n_query", "stride", "n_bins"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}.")
        held = tuple(self.held_out)
        if not all(_is_int(label) for label in held):
            raise ConfigError(f"held_out must be integer labels, got {self.held_out!r}.")
        held = tuple(int(label) for label in held)
        if len(set(held)) != len(held):
            raise ConfigError(f"held_out lists a label twice: {self.held_out!r}.")
        object.__setattr__(self, "held_out", held)  # accept lists, store a hashable tuple
        if self.view_offset is not None and (
            not _is_int(self.view_offset) or not 0 <= self.view_offset < self.stride
        ):
            raise ConfigError(
                f"view_offset must be None (random view) or an integer in "
                f"0..{self.stride - 1} for stride {self.stride}, got {self.view_offset!r}."
            )
        if not (isinstance(self.window_s, int | float) and 0 < self.window_s < np.inf):
            raise ConfigError(
                f"window_s must be a positive number of seconds, got {self.window_s!r}."
            )
        if not _is_int(self.channel_shift) or self.channel_shift < 0:
            raise ConfigError(
                f"channel_shift must be an integer >= 0 (columns), got {self.channel_shift!r}."
            )


@dataclass(frozen=True)
class TaskSpec:
    """One task as recording indices (no tensors): what :meth:`TaskSampler.task` returns.

    Attributes
    ----------
    task_id : int
        Position of the task in the sampler's stream.
    classes : np.ndarray
        ``(N,)`` global labels; task-local label ``j`` means ``classes[j]``.
    support_index, query_index : np.ndarray
        ``(N*K,)`` and ``(N*Q,)`` dataset indices, class-major.
    support_view, query_view : np.ndarray
        Spatial-sampling offset used for each recording (all 0 when ``stride == 1``).
    support_shift, query_shift : np.ndarray
        Channel shift of each recording, in columns (all 0 without the shift
        augmentation).
    """

    task_id: int
    classes: np.ndarray
    support_index: np.ndarray
    query_index: np.ndarray
    support_view: np.ndarray
    query_view: np.ndarray
    support_shift: np.ndarray
    query_shift: np.ndarray


@dataclass
class TaskBatch:
    """A batch of tasks as tensors; the leading dimension indexes tasks (B).

    Attributes
    ----------
    support_x : torch.Tensor
        ``(B, N*K, T, C)`` binned spike counts (T = ``n_bins``, C = channels per view).
    support_y : torch.Tensor
        ``(B, N*K)`` int64 task-local labels ``0..N-1``.
    query_x : torch.Tensor
        ``(B, N*Q, T, C)``.
    query_y : torch.Tensor
        ``(B, N*Q)`` int64 task-local labels.
    classes : torch.Tensor
        ``(B, N)`` int64 global labels; ``classes[b, y]`` is the global label of local ``y``.
    query_seen : torch.Tensor
        ``(B, N*Q)`` bool, True where the query's class is not held out (it was seen in
        meta-training); all True for ``meta-train`` tasks.
    support_index, query_index : torch.Tensor
        ``(B, N*K)`` / ``(B, N*Q)`` int64 dataset indices of the recordings.
    support_view, query_view : torch.Tensor
        Spatial-sampling offset of each recording (int64).
    task_ids : torch.Tensor
        ``(B,)`` int64 task ids within the sampler's stream.
    """

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor
    classes: torch.Tensor
    query_seen: torch.Tensor
    support_index: torch.Tensor
    query_index: torch.Tensor
    support_view: torch.Tensor
    query_view: torch.Tensor
    task_ids: torch.Tensor

    @property
    def n_tasks(self) -> int:
        """Number of tasks B."""
        return int(self.task_ids.shape[0])

    @property
    def support_global_y(self) -> torch.Tensor:
        """``(B, N*K)`` global labels of the support recordings."""
        return self.classes.gather(1, self.support_y)

    @property
    def query_global_y(self) -> torch.Tensor:
        """``(B, N*Q)`` global labels of the queries (for the published 20-unit accuracy)."""
        return self.classes.gather(1, self.query_y)

    def to(self, device: torch.device | str) -> TaskBatch:
        """Return a copy with every tensor moved to ``device``."""
        return TaskBatch(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})


class TaskSampler:
    """Draw reproducible N-way K-shot tasks from a dataset for one protocol split.

    Parameters
    ----------
    dataset : FewShotDataset
        Any object with ``labels`` (int array), ``n_classes``, ``label_names`` and
        ``binned(indices, *, n_bins, window_s, stride, offset, dtype)``, such as
        :class:`mosaicnet.data.SpikeDataset`. Use the SHD *train* file for
        ``meta-train`` and the *test* file for the ``meta-test*`` splits.
    config : FewShotConfig
        Task and tensor shape.
    split : str
        ``"meta-train"``: classes outside ``held_out``. ``"meta-test"``: all classes, each
        query marked seen/unseen. ``"meta-test-unseen"``: only ``held_out``.
        ``"meta-test-seen"``: only the classes outside ``held_out``.
    seed : int
        Non-negative seed; with the split it fixes every task.
    recordings : array of int, optional
        Draw only from these recordings (indices into the dataset), e.g. to keep a
        validation subset of the train file apart (:func:`split_recordings`).
        Default: all.

    Attributes
    ----------
    classes : np.ndarray
        Sorted global labels this sampler draws its classes from.

    Raises
    ------
    ConfigError
        Unknown split; a held-out label outside the dataset's label table; ``n_way``
        larger than the split's classes; a class with fewer than ``k_shot + n_query``
        recordings (the message names it); a negative seed.
    DataFormatError
        The dataset has labels outside its own label table.
    """

    def __init__(
        self,
        dataset: FewShotDataset,
        config: FewShotConfig | None = None,
        *,
        split: str = "meta-train",
        seed: int = 0,
        recordings: np.ndarray | None = None,
    ) -> None:
        self.dataset = dataset
        self.config = config = config if config is not None else FewShotConfig()
        if split not in SPLITS:
            raise ConfigError(f"split must be one of {', '.join(SPLITS)}; got {split!r}.")
        if not _is_int(seed) or seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {seed!r}.")
        self.split = split
        self.seed = int(seed)
        self._next_task = 0

        labels = np.asarray(dataset.labels, dtype=np.int64)
        table = _label_table(dataset)
        where = _describe(dataset)
        outside = np.setdiff1d(np.unique(labels), table)
        if outside.size:
            raise DataFormatError(
                f"{where} has labels {outside.tolist()} outside its label table "
                f"{table.tolist()}; fix the dataset's labels or label names."
            )
        unknown = [label for label in config.held_out if label not in set(table.tolist())]
        if unknown:
            raise ConfigError(
                f"held_out labels {unknown} are not in the label table of {where} "
                f"({table.min()}..{table.max()}); choose held-out labels among them."
            )
        held = np.asarray(config.held_out, dtype=np.int64)
        seen = np.setdiff1d(table, held)
        self.classes: np.ndarray = {
            "meta-train": seen,
            "meta-test": table,
            "meta-test-unseen": np.sort(held),
            "meta-test-seen": seen,
        }[split]
        self._held_out = held

        if config.n_way > self.classes.size:
            raise ConfigError(
                f"n_way={config.n_way} but split {split!r} has only {self.classes.size} "
                f"classes ({self.classes.tolist()}, held_out={list(config.held_out)}); "
                f"lower n_way or change held_out."
            )
        per_task = config.k_shot + config.n_query
        allowed = np.ones(labels.size, dtype=bool)
        if recordings is not None:
            allowed = np.zeros(labels.size, dtype=bool)
            allowed[np.asarray(recordings, dtype=np.int64)] = True
        self._pools: dict[int, np.ndarray] = {
            int(c): np.flatnonzero((labels == c) & allowed) for c in self.classes
        }
        short = [c for c, pool in self._pools.items() if pool.size < per_task]
        if short:
            names = dataset.label_names
            detail = ", ".join(
                f"class {c} ({names.get(c, '?')!r}): {self._pools[c].size}" for c in short
            )
            raise ConfigError(
                f"k_shot + n_query = {config.k_shot} + {config.n_query} = {per_task} "
                f"distinct recordings are drawn per class, but {where} has fewer for "
                f"{detail}; lower k_shot or n_query, or use a larger dataset."
            )

    def __repr__(self) -> str:
        c = self.config
        return (
            f"TaskSampler({c.n_way}-way {c.k_shot}-shot, {c.n_query} queries/class, "
            f"split={self.split!r}, classes={self.classes.tolist()}, seed={self.seed}, "
            f"stride={c.stride})"
        )

    @property
    def next_task_id(self) -> int:
        """Id of the first task the next :meth:`sample` call returns."""
        return self._next_task

    def task(self, task_id: int) -> TaskSpec:
        """Return task ``task_id`` as indices; depends only on ``(seed, split, task_id)``."""
        if not _is_int(task_id) or task_id < 0:
            raise ConfigError(f"task_id must be a non-negative integer, got {task_id!r}.")
        c = self.config
        # One independent stream per task: the same task whatever the batch composition.
        rng = np.random.default_rng(
            np.random.SeedSequence(self.seed, spawn_key=(SPLITS.index(self.split), task_id))
        )
        classes = rng.choice(self.classes, size=c.n_way, replace=False)
        picks = np.stack(
            [
                rng.choice(self._pools[int(k)], size=c.k_shot + c.n_query, replace=False)
                for k in classes
            ]
        )  # (N, K+Q): distinct recordings per class, so no recording is used twice
        if c.stride > 1 and c.view_offset is None:
            views = rng.integers(0, c.stride, size=picks.shape)
        else:
            views = np.full(picks.shape, c.view_offset or 0, dtype=np.int64)
        # Drawn last, and only when asked for: tasks without the augmentation are
        # the same as before it existed.
        if c.channel_shift > 0:
            shifts = rng.integers(-c.channel_shift, c.channel_shift + 1, size=picks.shape)
        else:
            shifts = np.zeros(picks.shape, dtype=np.int64)
        return TaskSpec(
            task_id=int(task_id),
            classes=classes.astype(np.int64),
            support_index=picks[:, : c.k_shot].reshape(-1).astype(np.int64),
            query_index=picks[:, c.k_shot :].reshape(-1).astype(np.int64),
            support_view=views[:, : c.k_shot].reshape(-1).astype(np.int64),
            query_view=views[:, c.k_shot :].reshape(-1).astype(np.int64),
            support_shift=shifts[:, : c.k_shot].reshape(-1).astype(np.int64),
            query_shift=shifts[:, c.k_shot :].reshape(-1).astype(np.int64),
        )

    def sample(self, n_tasks: int) -> TaskBatch:
        """Return the next ``n_tasks`` tasks of the stream as a :class:`TaskBatch`."""
        if not _is_int(n_tasks) or n_tasks < 1:
            raise ConfigError(f"n_tasks must be a positive integer, got {n_tasks!r}.")
        start = self._next_task
        self._next_task += int(n_tasks)
        return self.tasks(range(start, start + int(n_tasks)))

    def tasks(self, task_ids: Iterable[int]) -> TaskBatch:
        """Return the given tasks (any ids, any order) as a :class:`TaskBatch`."""
        import torch

        specs = [self.task(i) for i in task_ids]
        if not specs:
            raise ConfigError("task_ids is empty; ask for at least one task.")
        c = self.config
        support_index = np.stack([s.support_index for s in specs])
        query_index = np.stack([s.query_index for s in specs])
        support_view = np.stack([s.support_view for s in specs])
        query_view = np.stack([s.query_view for s in specs])
        x = self._binned(
            np.concatenate([support_index.reshape(-1), query_index.reshape(-1)]),
            np.concatenate([support_view.reshape(-1), query_view.reshape(-1)]),
        )
        if c.channel_shift > 0:
            x = shift_channels(
                x,
                np.concatenate(
                    [np.concatenate([s.support_shift for s in specs]),
                     np.concatenate([s.query_shift for s in specs])]
                ),
            )  # fmt: skip
        n_support = support_index.size
        batch = len(specs)
        classes = np.stack([s.classes for s in specs])
        query_y = np.broadcast_to(np.repeat(np.arange(c.n_way), c.n_query), query_index.shape)
        support_y = np.broadcast_to(np.repeat(np.arange(c.n_way), c.k_shot), support_index.shape)
        query_global = np.take_along_axis(classes, query_y, axis=1)

        def long(array: np.ndarray) -> torch.Tensor:
            # A copy: broadcast views are read-only, and the tensors must own writable memory.
            return torch.from_numpy(np.array(array, dtype=np.int64))

        return TaskBatch(
            support_x=x[:n_support].reshape(batch, -1, *x.shape[1:]),
            support_y=long(support_y),
            query_x=x[n_support:].reshape(batch, -1, *x.shape[1:]),
            query_y=long(query_y),
            classes=long(classes),
            query_seen=torch.from_numpy(~np.isin(query_global, self._held_out)),
            support_index=long(support_index),
            query_index=long(query_index),
            support_view=long(support_view),
            query_view=long(query_view),
            task_ids=long(np.array([s.task_id for s in specs])),
        )

    def _binned(self, indices: np.ndarray, views: np.ndarray) -> torch.Tensor:
        """Bin recording ``indices[i]`` in view ``views[i]`` into row ``i``, one call."""
        import torch

        c = self.config
        return self.dataset.binned(
            indices, n_bins=c.n_bins, window_s=c.window_s, stride=c.stride, offset=views,
            dtype=torch.float32,
        )  # fmt: skip


def shift_channels(x: torch.Tensor, shifts: np.ndarray) -> torch.Tensor:
    """Move each recording of ``x`` (``(n, T, C)``) by ``shifts[i]`` channels, zero-filled.

    Spike counts in column ``c`` land in column ``c + shifts[i]``; counts moved past
    either edge are dropped. Returns a new tensor.
    """
    import torch

    shifts = np.asarray(shifts, dtype=np.int64)
    if shifts.shape != (x.shape[0],):
        raise ConfigError(f"need one shift per recording: {shifts.shape} for {x.shape[0]}")
    out = torch.zeros_like(x)
    n_channels = x.shape[-1]
    for d in np.unique(shifts):
        rows = torch.from_numpy(np.flatnonzero(shifts == d))
        d = int(d)
        if abs(d) >= n_channels:
            continue  # everything moves out: the rows stay zero
        if d >= 0:
            out[rows, :, d:] = x[rows, :, : n_channels - d]
        else:
            out[rows, :, :d] = x[rows, :, -d:]
    return out


def split_recordings(
    labels: np.ndarray, per_class: int, *, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split recordings into (kept, set apart): ``per_class`` random ones of each class apart.

    Seeded, so a run and its resume set the same recordings apart. Returns sorted
    index arrays.

    Raises
    ------
    ConfigError
        A class has no more than ``per_class`` recordings (nothing would be left).
    """
    labels = np.asarray(labels, dtype=np.int64)
    rng = np.random.default_rng(seed)
    apart = []
    for label in np.unique(labels):
        pool = np.flatnonzero(labels == label)
        if pool.size <= per_class:
            raise ConfigError(
                f"class {int(label)} has {pool.size} recordings; setting {per_class} apart "
                "would leave none for training. Lower the number set apart"
            )
        apart.append(rng.choice(pool, size=per_class, replace=False))
    apart_index = np.sort(np.concatenate(apart)) if apart else np.zeros(0, dtype=np.int64)
    kept = np.setdiff1d(np.arange(labels.size), apart_index)
    return kept, apart_index


def _is_int(value: object) -> bool:
    """True for Python and numpy integers (not bools, which are ints by inheritance)."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _label_table(dataset: FewShotDataset) -> np.ndarray:
    """Sorted labels the dataset defines: its ``label_names`` keys, else ``0..n_classes-1``."""
    names = getattr(dataset, "label_names", None) or {}
    if names:
        return np.array(sorted(int(k) for k in names), dtype=np.int64)
    return np.arange(int(dataset.n_classes), dtype=np.int64)


def _describe(dataset: FewShotDataset) -> str:
    """Name the dataset in messages (its file when it has one)."""
    path = getattr(dataset, "path", None)
    return f"dataset {path}" if path is not None else "the dataset"
