"""The few element-wise functions the device formulas need, for each array module.

Every device formula in :mod:`mosaicnet.devices` is written once, against the
small :class:`ArrayOps` interface below, and evaluated by three back ends:

* :data:`NUMPY_OPS` to program and read arrays in numpy,
* :class:`TorchOps` for the training-time perturbation (works under
  ``torch.func.vmap`` and ``torch.func.grad``),
* :class:`mosaicnet.devices.brian_form.BrianCodeOps`, which evaluates the same
  formula on symbols and so *writes* the Brian2 read code.

Arithmetic (``+ - * / **`` and unary ``-``) uses the operators of the array
type itself; only functions spelt differently per module live here. Bounds of
:meth:`ArrayOps.clip` are scalars, named constants or ``None`` (open side):
that is all the published device laws need, and it keeps the Brian2
translation a single ``clip(x, low, high)`` call.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np


class ArrayOps(Protocol):
    """Element-wise functions of one array module (numpy, torch, Brian2 code)."""

    def log(self, x: Any) -> Any:
        """Natural logarithm."""

    def sqrt(self, x: Any) -> Any:
        """Square root."""

    def abs(self, x: Any) -> Any:
        """Absolute value."""

    def clip(self, x: Any, low: Any, high: Any) -> Any:
        """Clamp ``x`` to ``[low, high]``; ``None`` leaves that side open."""

    def constant(self, name: str, value: float, unit: str) -> Any:
        """A named model constant whose SI value is ``value`` in ``unit``.

        ``unit`` is ``"siemens"``, ``"second"`` or ``"1"``. numpy and torch
        return the number itself; the Brian2 back end returns a symbol that
        refers to the form's namespace, so the generated code names the
        constants a user may want to look up or change.
        """


class NumpyOps:
    """:class:`ArrayOps` for numpy arrays and Python floats."""

    def log(self, x: Any) -> Any:
        return np.log(x)

    def sqrt(self, x: Any) -> Any:
        return np.sqrt(x)

    def abs(self, x: Any) -> Any:
        return np.abs(x)

    def clip(self, x: Any, low: Any, high: Any) -> Any:
        return np.clip(x, low, high)

    def constant(self, name: str, value: float, unit: str) -> float:
        return float(value)


class TorchOps:
    """:class:`ArrayOps` for torch tensors (torch is imported on first use: it is heavy).

    Python scalars are turned into tensors first, so a read time given as a
    float and one sampled as a tensor take the same code path.
    """

    def __init__(self) -> None:
        import torch

        self._torch = torch

    def _tensor(self, x: Any) -> Any:
        return x if isinstance(x, self._torch.Tensor) else self._torch.as_tensor(x)

    def log(self, x: Any) -> Any:
        return self._torch.log(self._tensor(x))

    def sqrt(self, x: Any) -> Any:
        return self._torch.sqrt(self._tensor(x))

    def abs(self, x: Any) -> Any:
        return self._torch.abs(self._tensor(x))

    def clip(self, x: Any, low: Any, high: Any) -> Any:
        return self._torch.clamp(self._tensor(x), min=low, max=high)

    def constant(self, name: str, value: float, unit: str) -> float:
        return float(value)


#: The numpy back end (stateless, shared).
NUMPY_OPS = NumpyOps()
