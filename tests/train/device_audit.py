"""CUDA's device rules, checked on a CPU: catch host tensors that meet model tensors.

On a GPU, a tensor built on the host (``torch.tensor([...])`` without ``device=``) and one on the
model's device cannot meet in one operation: ``cpu_tensor[cuda_index]`` raises "indices should be
either on cpu or on the same device as the indexed tensor (cpu)", ``cpu + cuda`` raises "Expected
all tensors to be on the same device". On a CPU both are on the CPU and nothing fails, so CPU tests
passed while the first GPU job crashed (issue 11: the PPO pre-flight's advantages).

``DeviceAudit`` tags tensors as the GPU would place them: the parameters and buffers of the given
modules, anything created with an explicit ``device=``, moved with ``.to(device)`` / ``.cuda()``,
or computed from such a tensor, is a *device* tensor; everything else (factory calls without a
device, tokenizer output, ``torch.randperm(n)``) is a *host* tensor. An operation mixing a
non-scalar host tensor with a device tensor is recorded as a violation, with the rlpipe source line
that ran it, except what CUDA allows: indexing or writing into a device tensor with host indices,
copies (``.to``, ``copy_``) and shape-only reads (``expand_as``). Zero-dimensional host tensors
mix freely, as on CUDA.
"""

from __future__ import annotations

import contextlib
import traceback
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

_TAG = "_rlpipe_on_device"
# Mixing a device tensor (self) with host indices/values is fine on CUDA for these.
_DEVICE_SELF_OK = {"__getitem__", "__setitem__", "index_select", "copy_"}
_COPIES = {"to", "cuda", "copy_", "__repr__", "__format__", "__str__", "tolist", "item", "numpy", "cpu"}
# These read only the other tensor's shape: no device rule applies, the result stays where self is.
_SHAPE_ONLY = {"expand_as", "view_as", "reshape_as"}


def _name(func: Any) -> str:
    return getattr(func, "__name__", repr(func))


def _on_device(t: torch.Tensor) -> bool:
    return bool(getattr(t, _TAG, False))


def _tag(obj: Any) -> None:
    for t in tree_flatten(obj)[0]:
        if isinstance(t, torch.Tensor):
            with contextlib.suppress(AttributeError, RuntimeError):  # some views refuse attributes
                setattr(t, _TAG, True)


def _moves_to_device(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """``t.to(device)``, ``t.cuda()``, or a factory call given ``device=``."""
    if name == "cuda":
        return True
    if kwargs.get("device") is not None:
        return True
    if name == "to":
        return any(isinstance(a, (torch.device, str)) for a in args[1:]) or any(
            isinstance(a, torch.Tensor) and _on_device(a) for a in args[1:]
        )
    return False


def _where() -> str:
    """The innermost rlpipe source line on the stack (what to fix)."""
    for frame in reversed(traceback.extract_stack()[:-2]):
        if "/rlpipe/" in frame.filename and "device_audit" not in frame.filename:
            return f"{frame.filename.split('/src/')[-1]}:{frame.lineno} {frame.line}"
    return "<outside rlpipe>"


class DeviceAudit(TorchFunctionMode):
    """Record every operation that would mix host and device tensors on a GPU (see module doc)."""

    def __init__(self, *modules: torch.nn.Module) -> None:
        super().__init__()
        self.violations: list[str] = []
        self.ops = 0
        for module in modules:
            self.track(module)

    def track(self, module: torch.nn.Module) -> None:
        """Treat ``module``'s parameters and buffers as living on the accelerator."""
        for t in list(module.parameters()) + list(module.buffers()):
            _tag(t)

    def __torch_function__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None
    ) -> Any:
        kwargs = kwargs or {}
        name = _name(func)
        tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        device = [t for t in tensors if _on_device(t)]
        host = [t for t in tensors if not _on_device(t) and t.dim() > 0]
        self.ops += 1
        if name in _SHAPE_ONLY:
            out = func(*args, **kwargs)
            if _on_device(args[0]):
                _tag(out)
            return out
        if device and host and name not in _COPIES:
            this = args[0] if args and isinstance(args[0], torch.Tensor) else None
            allowed = name in _DEVICE_SELF_OK and this is not None and _on_device(this)
            if not allowed:
                self.violations.append(
                    f"{name}: host tensor {tuple(host[0].shape)} meets a device tensor at {_where()}"
                )
        out = func(*args, **kwargs)
        if _moves_to_device(name, args, kwargs) or (device and name not in ("cpu", "numpy", "tolist")):
            _tag(out)
        return out
