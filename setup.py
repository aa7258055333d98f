"""Install mosaicnet: hardware-aware few-shot learning with spiking networks on the Mosaic."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent

# Sweeps (mosaicnet.sweeps): Dask runs the trials, Optuna stores them; fANOVA
# importance in Optuna needs scikit-learn; the runner checks its workers' processes
# with psutil. Lower bounds: the first releases that support numpy 2; Optuna below
# its next major release, whose storage API may change (tested with 5.0).
DIST = ["dask[distributed]>=2024.1", "optuna>=3.5,<6", "scikit-learn>=1.4.2", "psutil>=5.9"]
# NIR export/import: nir 1.0 gave the neuron nodes their v_reset (tested with 1.0.8).
NIR = ["nir>=1.0"]

setup(
    name="mosaicnet",
    version="0.1.0",
    description=(
        "Hardware-aware few-shot learning with spiking networks on the Mosaic, "
        "a memristor-based small-world neuromorphic architecture"
    ),
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.11",
    packages=find_packages(include=["mosaicnet", "mosaicnet.*"]),
    # C kernels, compiled at first use (mosaicnet.native_build).
    package_data={
        "mosaicnet.network": ["fused_kernels.c"],
        "mosaicnet.data": ["binning_kernels.c"],
        "mosaicnet.meta": ["readout_kernels.c"],
    },
    install_requires=[
        # Lower bounds are the first releases that support numpy 2 (brian2 2.7,
        # torch 2.4, tables 3.10, h5py 3.11, matplotlib 3.9); CI tests the newest.
        "brian2>=2.7",
        # brian2 up to 2.9 calls ndarray.ptp, which numpy 2.4 removed (fixed in
        # brian2 2.10, brian-team/brian2#1705). On Python >= 3.12 brian2 2.10 is
        # required and numpy is free; on 3.11 (brian2 2.9 here) numpy stays < 2.4.
        "brian2>=2.10; python_version >= '3.12'",
        "numpy>=1.24,<2.4; python_version < '3.12'",
        "numpy>=1.24; python_version >= '3.12'",
        # Any torch >= 2.4; CPU-only machines: README, "Installing torch".
        "torch>=2.4",
        "tables>=3.10",
        # SHD-layout files written with h5py (vlen datasets PyTables cannot read).
        "h5py>=3.11",
        "matplotlib>=3.9",
        "networkx>=3.0",
        "tqdm>=4.60",
        # `mosaicnet data download shd`: transfer, md5 check and gunzip of the archives.
        "pooch>=1.8",
        "sympy>=1.10",
    ],
    extras_require={
        "dev": [
            "pytest>=7",
            "ruff>=0.5",
            "cython>=3.0",
            "nbclient>=0.8",
            "nbformat>=5.7",
            "ipykernel>=6",
            "scipy>=1.13",
            # baseline of benchmarks/bench_clone.py (the clone's training step vs snnTorch);
            # tests/test_network_nir.py imports the NIR export into it (needs nirtorch)
            "snntorch>=0.9",
            "nirtorch>=2.0",
            *NIR,
            # the sweep tests run on real Dask workers with a real Optuna study
            *DIST,
        ],
        # cuRAND for brian2cuda's generated code. brian2cuda itself is not listed:
        # 1.0a7 pins brian2==2.8.0 (it works with 2.9), so as a dependency it would
        # downgrade brian2; install it with --no-deps (README, "GPU backends").
        # brian2genn has no extra: 1.7 pins brian2 < 2.6, which this package cannot use.
        "gpu": ["nvidia-curand"],
        "dist": DIST,
        # NetworkSpec.to_nir / `mosaicnet export --nir` (Neuromorphic Intermediate Representation)
        "nir": NIR,
        # tests/test_devices_aihwkit_parity.py (pcm_aihwkit against IBM aihwkit's
        # PCMLikeNoiseModel; skipped without it). Not in dev: aihwkit 1.1.0 ships
        # compiled wheels only (one for CPython 3.11 on manylinux x86_64), requires
        # torch >= 2.9.1 plus torchvision, cmake, scikit-build and mypy at run time,
        # and the package itself never imports it.
        "aihwkit": ["aihwkit==1.1.0"],
    },
    entry_points={"console_scripts": ["mosaicnet=mosaicnet.cli:main"]},
)
