"""Install mosaicnet: hardware-aware few-shot learning with spiking networks on the Mosaic."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent

# Sweeps (mosaicnet.sweeps): Dask runs the trials, Optuna stores them; fANOVA
# importance in Optuna needs scikit-learn. Optuna below the next major release:
# tested with 5.0, and a major release may change the storage API the runner uses.
DIST = ["dask[distributed]>=2024.1", "optuna>=3.5,<6", "scikit-learn>=1.2"]

setup(
    name="mosaicnet",
    version="0.1.0",
    description=(
        "Hardware-aware few-shot learning with spiking networks on the Mosaic, "
        "a memristor-based small-world neuromorphic architecture"
    ),
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["mosaicnet", "mosaicnet.*"]),
    install_requires=[
        "brian2>=2.6",
        # brian2 2.8/2.9 (the newest released for Python 3.11 at the time of
        # writing) call ndarray.ptp, which numpy 2.4 removed: importing brian2
        # fails under numpy>=2.4. Lift this pin once brian2 ships a fix.
        "numpy>=1.24,<2.4",
        # Real users may take any recent torch; CI installs the CPU wheel first.
        "torch>=2.2",
        "tables>=3.8",
        # SHD-layout files written with h5py (vlen datasets PyTables cannot read).
        "h5py>=3.8",
        "matplotlib>=3.7",
        "networkx>=3.0",
        "tqdm>=4.60",
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
            "scipy>=1.10",
            # baseline of benchmarks/bench_clone.py (the clone's training step vs snnTorch)
            "snntorch>=0.9",
            # the sweep tests run on real Dask workers with a real Optuna study
            *DIST,
        ],
        # brian2cuda 1.0a7 pins brian2==2.8.0 but generates code under 2.9;
        # install it with --no-deps (see README, "GPU backends").
        "gpu": ["brian2cuda>=1.0a7", "nvidia-curand"],
        "genn": ["brian2genn>=1.7"],
        "dist": DIST,
    },
    entry_points={"console_scripts": ["mosaicnet=mosaicnet.cli:main"]},
)
