"""A launched worker on a machine without GPUs trains under the accelerate config it was given.

``accelerate launch`` with ``config/accelerate/fsdp.yaml`` on a host without a GPU starts the
processes, but accelerate 1.16 only honours FSDP for GPU-like devices: ``AcceleratorState`` makes
the run ``MULTI_CPU`` and TRL's trainer is wrapped in plain DDP instead. The FSDP2 path (sharding,
``fully_shard`` wrapping, the full-state-dict gather at save, the sharded optimizer state and its
reload) would then never execute on a CPU, so the multi-process tests and the CPU benchmark would
check DDP under the FSDP name. PyTorch's FSDP2 (``fully_shard``) itself runs on CPU tensors over
gloo, so :func:`configure_cpu_worker` turns the state back to FSDP with accelerate's own plugin
(built from the ``FSDP_*`` variables the launcher set): every later step is accelerate's and
transformers' unchanged FSDP2 code, the one a GPU run executes.

On a CPU the launch config's ``mixed_precision: bf16`` would also make accelerate autocast to
bf16, while a one-process run on the CPU trains in float32 (``GRPOConfig(bf16=cuda)``). A worker
without a GPU trains in float32 too, so a 2-process CPU run computes what one process does on the
same batch (the equivalence tests compare them). A GPU worker is left entirely alone.
"""

from __future__ import annotations

import logging
import os
from typing import Any

log = logging.getLogger(__name__)

#: Set on the ``AcceleratorState`` initialiser once it has been wrapped (idempotent installs).
_WRAPPED = "_rlpipe_fsdp_on_cpu"


def fsdp_requested() -> bool:
    """Whether the launcher's config asked for FSDP (``accelerate launch`` exports this)."""
    return os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"


def configure_cpu_worker() -> bool:
    """Make a launched CPU worker train as its accelerate config says; True when it changed anything.

    Call before anything creates accelerate's state (the trainer does, when it is built). With a
    GPU this does nothing.
    """
    import torch

    if torch.cuda.is_available() or int(os.environ.get("WORLD_SIZE", "1")) < 2:
        return False
    if os.environ.get("ACCELERATE_MIXED_PRECISION", "no") != "no":
        log.info("no GPU: training in float32 (the launch config's mixed precision is for GPUs)")
    os.environ["ACCELERATE_MIXED_PRECISION"] = "no"
    if fsdp_requested():
        _install_fsdp_on_cpu()
        log.info("no GPU: FSDP%s on the CPU over gloo", os.environ.get("FSDP_VERSION", ""))
    return True


def _install_fsdp_on_cpu() -> None:
    """Wrap ``AcceleratorState.__init__``: a ``MULTI_CPU`` state with an FSDP plugin becomes ``FSDP``.

    This is what accelerate's initialiser does for a GPU (``distributed_type = FSDP``, the plugin's
    mixed precision set, ``fsdp_plugin`` kept, the type shared with ``PartialState``); only the
    device test is bypassed. ``Accelerator`` builds the plugin from the environment and passes it.
    """
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import DistributedType

    original = AcceleratorState.__init__
    if getattr(original, _WRAPPED, False):
        return

    def init(self: Any, *args: Any, fsdp_plugin: Any = None, **kwargs: Any) -> None:
        original(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
        if self.distributed_type == DistributedType.MULTI_CPU and fsdp_plugin is not None:
            self.distributed_type = DistributedType.FSDP
            if self._mixed_precision != "no":
                fsdp_plugin.set_mixed_precision(self._mixed_precision)
            self.fsdp_plugin = fsdp_plugin
            PartialState._shared_state["distributed_type"] = DistributedType.FSDP

    setattr(init, _WRAPPED, True)
    AcceleratorState.__init__ = init  # type: ignore[method-assign]
