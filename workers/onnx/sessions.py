"""Loading a model file into an onnxruntime session, checked against its contract.

Every check happens when the worker starts, so a missing or mismatched model
stops the worker with a ``ConfigError`` naming the file and what was expected,
instead of failing the first user's job.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from erogaki_common.errors import ConfigError

log = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
FLOAT = "tensor(float)"
INT64 = "tensor(int64)"
UINT8 = "tensor(uint8)"

# A dimension as onnxruntime reports it: a number, or a symbolic name / None when dynamic.
Dim = int | str | None


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """What a contract requires of one input or output. In ``shape``, an int must match
    the model's dimension unless the model leaves it dynamic; None accepts anything."""

    name: str
    dtype: str
    shape: tuple[int | None, ...]

    def describe(self) -> str:
        dims = ",".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name!r} {self.dtype.removeprefix('tensor(').rstrip(')')}[{dims}]"


@dataclass(frozen=True, slots=True)
class Contract:
    what: str  # e.g. "the DeepCreamPy bar model"
    setting: str  # the variable naming the file
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    # Which of a model's contracts this is, when it has several (e.g. "pipeline export").
    variant: str = ""

    def describe(self) -> str:
        ins = ", ".join(s.describe() for s in self.inputs)
        outs = ", ".join(s.describe() for s in self.outputs)
        return f"inputs {ins}; outputs {outs}"


class Model:
    """One checked session. ``run`` is safe from several threads at once."""

    def __init__(self, session: Any, path: Path, contract: Contract) -> None:
        self.session = session
        self.path = path
        self.contract = contract
        self.provider: str = session.get_providers()[0]
        self.input_shapes: dict[str, tuple[Dim, ...]] = {
            arg.name: tuple(arg.shape) for arg in session.get_inputs()
        }
        self.output_shapes: dict[str, tuple[Dim, ...]] = {
            arg.name: tuple(arg.shape) for arg in session.get_outputs()
        }
        self.metadata: dict[str, str] = dict(session.get_modelmeta().custom_metadata_map)
        # Seconds spent inside onnxruntime (wall, and CPU of the calling thread), so
        # benchmarks can tell the model's time from erogaki's own pre- and post-processing.
        self.busy = 0.0
        self.busy_cpu = 0.0
        self._lock = threading.Lock()

    def run(self, outputs: Sequence[str], feeds: Mapping[str, NDArray[Any]]) -> list[NDArray[Any]]:
        start, start_cpu = time.perf_counter(), time.thread_time()
        results = self.session.run(list(outputs), dict(feeds))
        with self._lock:
            self.busy += time.perf_counter() - start
            self.busy_cpu += time.thread_time() - start_cpu
        return [np.asarray(r) for r in results]


def providers(choice: str) -> list[str]:
    """The execution providers to request for ``EROGAKI_ONNX_PROVIDER``."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if choice == "cpu":
        return [CPU]
    if CUDA in available:
        return [CUDA, CPU]
    if choice == "cuda":
        raise ConfigError(
            "EROGAKI_ONNX_PROVIDER is cuda, but this onnxruntime has no CUDA execution "
            f"provider (it has {', '.join(available)}); install onnxruntime-gpu"
        )
    return [CPU]


def load(path: Path, contract: Contract, provider: str = "auto") -> Model:
    """Open ``path`` and check it against ``contract``; ``ConfigError`` if anything is off."""
    return load_any(path, (contract,), provider)


def load_any(path: Path, contracts: Sequence[Contract], provider: str = "auto") -> Model:
    """Open ``path`` and check it against each of ``contracts`` in turn (the exports one
    kind of model comes as); the first it matches wins. ``ConfigError`` if none."""
    import onnxruntime as ort

    first = contracts[0]
    if len(contracts) == 1:
        expected = f"{first.what} ({first.describe()})"
    else:
        expected = f"{first.what}, " + " or ".join(
            f"{c.variant} ({c.describe()})" for c in contracts
        )
    if not path.exists():
        raise ConfigError(
            f"{first.setting}: model file {path} does not exist; expected {expected}. "
            "See docs/models.md for where to get it."
        )
    if not path.is_file() or not os.access(path, os.R_OK):
        raise ConfigError(
            f"{first.setting}: model file {path} is not a readable file; expected {expected}"
        )
    options = ort.SessionOptions()
    # onnxruntime's own warnings (unused initializers, ...) would drown the worker's log.
    options.log_severity_level = 3
    requested = providers(provider)
    try:
        session = ort.InferenceSession(str(path), options, providers=requested)
    except ConfigError:
        raise
    except Exception as exc:  # onnxruntime raises its own unexported exception types
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"{first.setting}: {path} is not a model onnxruntime can load ({reason[:300]}); "
            f"expected {expected}"
        ) from None
    failures: list[str] = []
    contract = None
    for candidate in contracts:
        problems = mismatches(session, candidate)
        if not problems:
            contract = candidate
            break
        label = f" as {candidate.variant}" if candidate.variant else ""
        failures.append(f"{'; '.join(problems)}. Expected{label}: {candidate.describe()}")
    if contract is None:
        raise ConfigError(
            f"{first.setting}: {path} does not match {first.what}: " + " | ".join(failures)
        )
    model = Model(session, path, contract)
    if provider == "cuda" and model.provider != CUDA:
        raise ConfigError(
            f"EROGAKI_ONNX_PROVIDER is cuda, but {path} runs on {model.provider}: "
            "the CUDA provider failed to start (check the driver, CUDA 12 and cuDNN 9)"
        )
    if provider == "auto" and CUDA in requested and model.provider != CUDA:
        log.warning(
            "%s: the CUDA provider did not start (see onnxruntime's message above); running on %s",
            path,
            model.provider,
        )
    variant = f", {contract.variant}" if contract.variant else ""
    log.info("%s%s: %s runs on %s", contract.what, variant, path, model.provider)
    return model


def mismatches(session: Any, contract: Contract) -> list[str]:
    """What keeps ``session``'s model from meeting ``contract`` (nothing: it does)."""
    problems = _mismatches(session.get_inputs(), contract.inputs, "input")
    fed = {spec.name for spec in contract.inputs}
    problems += [
        f"it needs an input {arg.name!r} that nothing feeds"
        for arg in session.get_inputs()
        if arg.name not in fed
    ]
    problems += _mismatches(session.get_outputs(), contract.outputs, "output")
    return problems


def _mismatches(args: Sequence[Any], specs: Sequence[TensorSpec], kind: str) -> list[str]:
    found = {arg.name: arg for arg in args}
    problems: list[str] = []
    for spec in specs:
        arg = found.get(spec.name)
        if arg is None:
            names = ", ".join(repr(n) for n in found) or "none"
            problems.append(f"{kind} {spec.name!r} is missing (its {kind}s: {names})")
            continue
        if arg.type != spec.dtype:
            problems.append(f"{kind} {spec.name!r} is {arg.type}, not {spec.dtype}")
        shape = list(arg.shape) if arg.shape is not None else None
        if shape is None:
            continue
        if len(shape) != len(spec.shape):
            problems.append(
                f"{kind} {spec.name!r} has rank {len(shape)} {_dims(shape)}, not {len(spec.shape)}"
            )
            continue
        for axis, (have, want) in enumerate(zip(shape, spec.shape, strict=True)):
            if want is not None and isinstance(have, int) and have not in (want, -1):
                problems.append(
                    f"{kind} {spec.name!r} has shape {_dims(shape)}; dimension {axis} "
                    f"must be {want}"
                )
                break
    return problems


def _dims(shape: Sequence[Dim]) -> str:
    return "[" + ",".join(str(d) if isinstance(d, int) else "?" for d in shape) + "]"


def fixed(dim: Dim) -> int | None:
    """A dimension's size when the model fixes it, else None."""
    return dim if isinstance(dim, int) and dim > 0 else None
