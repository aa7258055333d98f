"""Training runs end to end on the real torch clone and synthetic SHD data.

Runs use a tiny network (2 x 2 tiles of 4 neurons, 30 time bins, stride 10) so the
whole file stays fast; the published-size network is exercised by the benchmark
and the slow accuracy test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mosaicnet.cli import main
from mosaicnet.errors import ConfigError, RunDirectoryError
from mosaicnet.meta.config import TrainConfig, save_config
from mosaicnet.meta.run_directory import CHECKPOINT_FILE, METRICS_FILE, RunDirectory
from mosaicnet.meta.training import train

REPO = Path(__file__).resolve().parents[1]

TINY = dict(
    rows=2, cols=2, neurons_per_tile=4, n_bins=30, spatial_stride=10, meta_batch=2,
    n_way=3, k_shot=2, n_query=2, checkpoint_every=3, outer_lr=3e-3,
)  # fmt: skip


pytestmark = pytest.mark.usefixtures("single_thread")


def tiny_config(tmp_path, **changes) -> Path:
    path = tmp_path / "tiny.json"
    save_config(TrainConfig(**{**TINY, **changes}), path)
    return path


def test_train_writes_a_complete_run(tmp_path, data_dir, capsys):
    run = tmp_path / "run"
    args = ["train", "--data", str(data_dir), "--out", str(run), "--quiet", "--iterations", "4",
            "--config", str(tiny_config(tmp_path)), "--device-model", "pcm_aihwkit"]  # fmt: skip
    assert main(args) == 0
    assert "trained 4 steps" in capsys.readouterr().out
    directory = RunDirectory.open(run)
    config = directory.load_config()
    assert config.iterations == 4 and config.device_model == "pcm_aihwkit"
    records = directory.read_metrics()
    assert [r["iteration"] for r in records] == [1, 2, 3, 4]
    assert all(r["noise"] for r in records)
    assert {"loss", "ce", "acc", "acc_all_units", "rate", "layout_term"} <= set(records[0])
    spec = directory.load_spec()
    assert spec.n_rec == 16 and spec.n_out == 20 and spec.n_in == 70
    checkpoint = directory.load_checkpoint()
    assert checkpoint["iteration"] == 4
    torch.testing.assert_close(
        torch.as_tensor(spec.w_out, dtype=torch.float32), checkpoint["params"]["w_out"]
    )
    initial = directory.load_spec(initial=True)
    assert not (initial.w_in == spec.w_in).all()  # training moved the weights


def test_existing_run_directory_is_not_overwritten(tmp_path, data_dir, capsys):
    run = tmp_path / "run"
    base = ["train", "--data", str(data_dir), "--out", str(run), "--quiet",
            "--config", str(tiny_config(tmp_path, iterations=1))]  # fmt: skip
    assert main(base) == 0
    before = (run / CHECKPOINT_FILE).read_bytes()
    assert main(base) == 2
    error = capsys.readouterr().err
    assert "already exists" in error and "--resume" in error and "--overwrite" in error
    assert (run / CHECKPOINT_FILE).read_bytes() == before
    # A user's own file survives --overwrite; the run's files are replaced.
    (run / "notes.txt").write_text("mine")
    assert main([*base, "--overwrite"]) == 0
    assert (run / "notes.txt").read_text() == "mine"


def test_resume_rejects_changed_configuration(tmp_path, data_dir, capsys):
    run = tmp_path / "run"
    base = ["train", "--data", str(data_dir), "--out", str(run), "--quiet",
            "--config", str(tiny_config(tmp_path, iterations=1))]  # fmt: skip
    assert main(base) == 0
    capsys.readouterr()
    assert main([*base, "--resume", "--inner-steps", "3"]) == 2
    assert "inner_steps: 1 -> 3" in capsys.readouterr().err
    # Extending the run is allowed, in passes of fewer tasks too (memory, not results).
    assert main([*base, "--resume", "--iterations", "2", "--tasks-per-pass", "1"]) == 0
    directory = RunDirectory.open(run)
    assert directory.load_checkpoint()["iteration"] == 2
    assert directory.load_config().tasks_per_pass == 1


def test_bad_inputs_give_clear_errors(tmp_path, data_dir, capsys):
    run = str(tmp_path / "run")
    common = ["train", "--data", str(data_dir), "--out", run, "--quiet"]
    assert main([*common, "--config", str(tiny_config(tmp_path)), "--device-model", "flash"]) == 2
    assert "unknown device preset 'flash'" in capsys.readouterr().err
    assert not Path(run).exists()  # nothing written for a bad preset

    bad = tmp_path / "wide.json"
    bad.write_text(json.dumps({"n_way": 25}))
    assert main([*common, "--config", str(bad)]) == 2
    assert "n_way=25 is larger than the readout" in capsys.readouterr().err

    assert main([*common, "--resume"]) == 2
    assert "not a training run" in capsys.readouterr().err

    assert main(["evaluate", str(tmp_path), "--data", str(data_dir)]) == 2
    assert "not a training run" in capsys.readouterr().err


def test_corrupt_checkpoint_is_reported(tmp_path, data_dir):
    run = tmp_path / "run"
    config = TrainConfig(**{**TINY, "iterations": 1})
    train(config, run, data_dir=data_dir, progress=False)
    path = run / CHECKPOINT_FILE
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(RunDirectoryError, match="corrupt or truncated"):
        train(config.with_changes(iterations=2), run, data_dir=data_dir, resume=True,
              progress=False)  # fmt: skip
    with pytest.raises(ConfigError, match="contradict"):
        train(config, run, data_dir=data_dir, resume=True, overwrite=True, progress=False)


def _train_args(run: Path, config: Path, data_dir: Path, *extra: str) -> list[str]:
    return ["train", "--data", str(data_dir), "--out", str(run), "--config", str(config),
            "--quiet", "--threads", "1", *extra]  # fmt: skip


def test_killed_run_resumes_bitwise_identical(tmp_path, data_dir):
    """SIGKILL mid-run, resume: final checkpoint equals an uninterrupted run's, bit for bit.

    The killed run is a separate process; the resumed and the uninterrupted runs run
    in this process with the same single intra-op thread.
    """
    config = tiny_config(tmp_path, iterations=15, device_model="rram_hfox", noise_start=2,
                         prune_start=1, prune_threshold=0.02)  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    killed = tmp_path / "killed"
    command = [sys.executable, "-m", "mosaicnet", *_train_args(killed, config, data_dir)]
    process = subprocess.Popen(command, env=env)
    deadline = time.monotonic() + 120
    while not (killed / CHECKPOINT_FILE).exists():
        assert process.poll() is None, "training ended before its first checkpoint"
        assert time.monotonic() < deadline, "no checkpoint after 120 s"
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    at_kill = RunDirectory.open(killed).load_checkpoint()["iteration"]
    assert 0 < at_kill < 15, "the run was not interrupted mid-way"
    assert main(_train_args(killed, config, data_dir, "--resume")) == 0

    straight = tmp_path / "straight"
    assert main(_train_args(straight, config, data_dir)) == 0

    a = RunDirectory.open(killed).load_checkpoint()
    b = RunDirectory.open(straight).load_checkpoint()
    assert a["iteration"] == b["iteration"] == 15
    _assert_identical(a, b)
    assert (killed / "spec.npz").read_bytes() == (straight / "spec.npz").read_bytes()
    iterations = [json.loads(line)["iteration"] for line in (killed / METRICS_FILE).open()]
    assert iterations == list(range(1, 16))  # steps after the checkpoint were not logged twice
    records = RunDirectory.open(straight).read_metrics()
    assert [r["noise"] for r in records[:3]] == [False, False, True]  # noise_start=2
    assert records[-1]["w_rec_zero_fraction"] > 0  # pruning happened


def _assert_identical(a, b, path="checkpoint"):
    assert type(a) is type(b), path
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for key in a:
            _assert_identical(a[key], b[key], f"{path}[{key!r}]")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_identical(x, y, f"{path}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape, path
        assert torch.equal(a, b), f"{path} differs"
    else:
        assert a == b, path


def test_evaluate_json_reports_seen_and_unseen(tmp_path, data_dir, capsys):
    run = tmp_path / "run"
    config = TrainConfig(**{**TINY, "iterations": 2})
    train(config, run, data_dir=data_dir, progress=False)
    capsys.readouterr()
    assert main(["evaluate", str(run), "--data", str(data_dir), "--tasks", "6", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("accuracy_seen", "accuracy_unseen", "ci95_seen", "ci95_unseen",
                "accuracy_seen_20way", "accuracy_unseen_20way"):  # fmt: skip
        assert 0.0 <= result[key] <= 1.0, key
    assert result["tasks"] == 12 and result["tasks_seen"] == result["tasks_unseen"] == 6
    assert len(result["predictions"]) == 12
    for prediction, detail in zip(result["predictions"], result["task_details"], strict=True):
        assert len(prediction) == 3 * 2
        assert set(prediction) <= set(detail["classes"])  # N-way: one of the task's classes
        held_out = set(config.held_out_classes)
        unseen = detail["split"] == "meta-test-unseen"
        assert all((label in held_out) == unseen for label in detail["labels"])
    assert main(["evaluate", str(run), "--data", str(data_dir), "--tasks", "3",
                 "--inner-steps", "2", "--quiet"]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert "2 inner step(s)" in text and "unseen" in text and "+-" in text


@pytest.mark.parametrize(("n_bins", "window_s", "dt_ms"), [(100, 1.4, 14.0), (30, 1.5, 50.0)])
def test_one_simulation_step_is_one_input_bin(n_bins, window_s, dt_ms):
    """Rasters and rates use the spec's dt: it must be the bin width of the data."""
    from brian2 import ms

    from mosaicnet.meta.run_setup import build_spec

    config = TrainConfig(rows=1, cols=2, neurons_per_tile=4, n_bins=n_bins, window_s=window_s)
    spec = build_spec(config, n_in=8)
    assert float(spec.neuron.dt / ms) == pytest.approx(dt_ms)
    tau_mem = spec.neuron.model.constants["tau_mem"]
    assert float(tau_mem / ms) == pytest.approx(420.0)  # physical, not per step


def test_train_with_a_users_neuron_model_file_and_a_changed_constant(tmp_path, data_dir, capsys):
    """--neuron-model FILE and --set CONSTANT=VALUE reach the run; later commands read it."""
    from brian2 import ms

    from mosaicnet.network.neuron_presets import alif

    model_file = tmp_path / "my_alif.json"
    model_file.write_text(json.dumps({**alif().to_dict(), "name": "my_alif"}))
    run = tmp_path / "run"
    args = ["train", "--data", str(data_dir), "--out", str(run), "--quiet", "--iterations", "2",
            "--config", str(tiny_config(tmp_path)), "--neuron-model", str(model_file),
            "--set", "tau_a=1400*ms"]  # fmt: skip
    assert main(args) == 0
    model_file.unlink()  # the run holds the model's code itself, not the path
    directory = RunDirectory.open(run)
    config = directory.load_config()
    assert isinstance(config.neuron_model, dict) and config.neuron_model["name"] == "my_alif"
    model = directory.load_spec().neuron.model
    assert model.name == "my_alif"
    assert float(model.constants["tau_a"] / ms) == pytest.approx(1400)
    assert main(["train", "--data", str(data_dir), "--out", str(run), "--quiet", "--resume",
                 "--iterations", "3"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["describe", str(run / "spec.npz")]) == 0
    out = capsys.readouterr().out
    assert "neuron model 'my_alif'" in out and "threshold: v > thr + beta * a" in out


def test_bad_neuron_model_fails_before_the_run_directory_is_made(tmp_path, data_dir, capsys):
    run = tmp_path / "run"
    common = ["train", "--data", str(data_dir), "--out", str(run), "--quiet",
              "--config", str(tiny_config(tmp_path))]  # fmt: skip
    assert main([*common, "--neuron-model", "alfi"]) == 2
    assert "unknown neuron model 'alfi'" in capsys.readouterr().err
    assert main([*common, "--neuron-model", "alif", "--set", "tau_b=3*ms"]) == 2
    assert "tau_b" in capsys.readouterr().err
    assert not run.exists()


def test_a_second_training_into_a_run_being_trained_is_refused(tmp_path, data_dir, capsys):
    """The run directory's lock names the process that holds it; nothing is touched."""
    import os

    from mosaicnet.meta.run_lock import run_lock

    run = tmp_path / "run"
    args = ["train", "--data", str(data_dir), "--out", str(run), "--quiet",
            "--config", str(tiny_config(tmp_path, iterations=1))]  # fmt: skip
    assert main(args) == 0
    before = (run / CHECKPOINT_FILE).read_bytes()
    with run_lock(run):  # another training holds the directory
        assert main([*args, "--overwrite"]) == 2
        error = capsys.readouterr().err
        assert "is in use" in error and f"process {os.getpid()}" in error
        assert main([*args, "--resume", "--iterations", "2"]) == 2
    assert (run / CHECKPOINT_FILE).read_bytes() == before
    # Released: resuming works, and a failed first training leaves no directory behind.
    assert main([*args, "--resume", "--iterations", "2"]) == 0
    missing = tmp_path / "never"
    assert main(["train", "--data", str(tmp_path / "no_data"), "--out", str(missing),
                 "--quiet"]) == 2  # fmt: skip
    assert not missing.exists()


def test_data_given_as_a_file_names_its_directory(tmp_path, data_dir, capsys):
    args = ["train", "--data", str(data_dir / "shd_train.h5"), "--out", str(tmp_path / "r"),
            "--quiet", "--config", str(tiny_config(tmp_path))]  # fmt: skip
    assert main(args) == 2
    assert f"is a file; pass the directory that holds it ({data_dir})" in capsys.readouterr().err


def test_resume_from_a_checkpoint_with_nan_weights_says_so(tmp_path, data_dir, capsys):
    run = tmp_path / "run"
    args = ["train", "--data", str(data_dir), "--out", str(run), "--quiet",
            "--config", str(tiny_config(tmp_path, iterations=1))]  # fmt: skip
    assert main(args) == 0
    checkpoint = torch.load(run / CHECKPOINT_FILE, weights_only=False)
    checkpoint["params"]["w_rec"][0, 0] = float("nan")
    torch.save(checkpoint, run / CHECKPOINT_FILE)
    capsys.readouterr()
    assert main([*args, "--resume", "--iterations", "2"]) == 2
    error = capsys.readouterr().err
    assert "holds NaN or infinite weights in w_rec" in error and "outer_lr" not in error


def test_a_full_disk_while_checkpointing_keeps_the_last_checkpoint(
    tmp_path, data_dir, capsys, monkeypatch
):
    import errno

    from mosaicnet.meta import run_directory

    run = tmp_path / "run"
    args = ["train", "--data", str(data_dir), "--out", str(run), "--quiet",
            "--config", str(tiny_config(tmp_path, iterations=3))]  # fmt: skip
    assert main(args) == 0
    before = (run / CHECKPOINT_FILE).read_bytes()

    def full(self, state):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(run_directory.RunDirectory, "save_checkpoint", full)
    capsys.readouterr()
    assert main([*args, "--resume", "--iterations", "6"]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "last checkpoint written before it is kept" in err
    assert (run / CHECKPOINT_FILE).read_bytes() == before


def test_a_device_that_is_not_there_fails_before_the_run_directory(tmp_path, data_dir, capsys):
    """--device cuda without a usable GPU, or a device name torch does not run on, says what
    to do and writes nothing."""
    with pytest.raises(ConfigError, match="torch_device must be 'cpu', 'cuda' or 'cuda:N'"):
        TrainConfig(torch_device="gpu")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the missing-GPU message cannot be shown")
    run = tmp_path / "run"
    assert main(_train_args(run, tiny_config(tmp_path), data_dir, "--device", "cuda")) == 2
    assert "sees no CUDA GPU" in capsys.readouterr().err
    assert not run.exists()


def test_a_run_trained_on_a_gpu_resumes_on_the_cpu(tmp_path, data_dir):
    """The compute device is the one setting besides the step count a resume may change,
    and checkpoints hold CPU tensors: a run written on a GPU continues on any machine.
    (Here the run's record is made to say it was trained on 'cuda'.)"""
    config = TrainConfig(**TINY, iterations=3)
    run = tmp_path / "run"
    train(config, run, data_dir=data_dir, progress=False)
    checkpoint = RunDirectory.open(run).load_checkpoint()
    assert {v.device.type for v in checkpoint["params"].values()} == {"cpu"}
    record = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**record, "torch_device": "cuda"}))
    resumed = train(config.with_changes(iterations=5), run, data_dir=data_dir, resume=True,
                    progress=False)  # fmt: skip
    assert resumed.iterations == 5 and resumed.run.load_config().torch_device == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_float64_training_on_cuda_matches_the_cpu(tmp_path, data_dir):
    """Five float64 steps on the GPU end where the CPU run ends, to rounding (the seeded
    draws are made on the CPU for both)."""
    config = TrainConfig(**TINY, iterations=5, dtype="float64", device_model="rram_hfox")
    cpu = train(config, tmp_path / "cpu", data_dir=data_dir, progress=False)
    gpu = train(config.with_changes(torch_device="cuda"), tmp_path / "gpu", data_dir=data_dir,
                progress=False)  # fmt: skip
    a = cpu.run.load_checkpoint()["params"]
    b = gpu.run.load_checkpoint()["params"]
    for name in a:
        assert torch.allclose(a[name], b[name], rtol=1e-8, atol=1e-10), name
