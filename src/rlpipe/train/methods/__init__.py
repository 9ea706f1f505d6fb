"""The training-method registry: one module per method, one entry here.

``get_method(name)`` refuses an unknown name by listing the known ones (as verl's policy-loss and
advantage registries, and ``rlpipe.rewards.registry``); ``build_spec(run)`` turns an expanded run into
its method's typed ``Spec``. Adding a method is a module with a ``Settings`` dataclass and a ``Method``
subclass, and one ``register`` line below.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rlpipe.train.methods.base import Method, Settings, Spec, SpecError, check_pcgrad_domains
from rlpipe.train.methods.grpo import GRPO
from rlpipe.train.methods.gspo import GSPO
from rlpipe.train.methods.ppo import PPO

__all__ = [
    "DEFAULT_METHOD",
    "METHODS",
    "Method",
    "Settings",
    "Spec",
    "SpecError",
    "build_spec",
    "check_pcgrad_domains",
    "get_method",
    "method_of",
    "register",
]

METHODS: dict[str, Method] = {}
#: The method of a run that names none.
DEFAULT_METHOD = "grpo"


def register(method: Method) -> Method:
    """Add ``method`` under its name; a name registered twice is a programming error."""
    if method.name in METHODS:
        raise ValueError(f"training method {method.name!r} is registered twice")
    METHODS[method.name] = method
    return method


def get_method(name: str) -> Method:
    """The method registered as ``name``; ``SpecError`` lists the known ones otherwise."""
    try:
        return METHODS[name]
    except KeyError:
        raise SpecError(
            f"method: unknown training method {name!r} (known: {', '.join(sorted(METHODS))})"
        ) from None


def method_of(run: Mapping[str, Any]) -> Method:
    """The method of an expanded run."""
    return get_method(run.get("method", DEFAULT_METHOD))


def build_spec(run: Mapping[str, Any]) -> Spec:
    """The typed spec of an expanded run (``rlpipe.config.expand_runs``); ``SpecError`` says what is wrong."""
    return method_of(run).spec(run)


for _method in (GRPO(), GSPO(), PPO()):
    register(_method)
