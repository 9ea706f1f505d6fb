"""The loss-mask probe of pre-flight: which tokens does a method's own loss train on?

One real batch goes through the run's own loss (each method's ``Method.mask_probe``), with non-zero
advantages, some completions ended early (so there is completion padding) and prompts of different
lengths (so there is prompt padding). Gradients are taken w.r.t. the decoder's last hidden states and
the input embeddings:

* the hidden state at position ``t`` feeds only the prediction of token ``t + 1``, so its gradient
  must be 0 wherever token ``t + 1`` is a prompt token or padding, and non-zero somewhere on the
  completion (otherwise the probe saw nothing);
* the input embedding of a padding token must get no gradient at all (nothing may attend to it).
  Prompt-token embeddings *do* get a gradient -- the completion attends to the prompt -- so "masked"
  means "no loss term predicts a prompt token", which the first check tests.

The trainers' probes (``rlpipe.train.grpo.grpo_mask_probe``, ``rlpipe.train.ppo.ppo_mask_probe``)
build the batch; this module holds what they share, and nothing here imports a trainer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from rlpipe.models import unwrap_peft

#: Gradients at masked positions must be exactly 0; this absolute slack only absorbs -0.0 and
#: denormals, it is far below any real gradient (the probe's live positions are ~1e-3).
GRAD_TOL = 1e-12


def mask_gradient_check(
    hidden_grad: Any, embed_grad: Any, prompt_mask: Any, completion_mask: Any, tol: float = GRAD_TOL
) -> dict[str, Any]:
    """Check per-position gradient magnitudes ``[N, P + T]`` against the batch's masks.

    ``prompt_mask [N, P]`` is 1 on prompt tokens, 0 on (left) padding; ``completion_mask [N, T]``
    is 1 on completion tokens the loss may train, 0 on padding. A hidden position ``t`` is
    *trained* iff token ``t + 1`` is a completion token with mask 1. Returns the largest gradient
    in each category, the position counts and ``passed`` with the problems found.
    """
    hid = np.abs(np.asarray(hidden_grad, dtype=float))
    emb = np.abs(np.asarray(embed_grad, dtype=float))
    pm = np.asarray(prompt_mask, dtype=bool)
    cm = np.asarray(completion_mask, dtype=bool)
    n, p = pm.shape
    t = cm.shape[1]
    if hid.shape != (n, p + t) or emb.shape != (n, p + t):
        raise ValueError(f"gradients must be [N, P + T] = {(n, p + t)}, got {hid.shape} and {emb.shape}")
    # category of the *target* token t + 1 predicted at hidden position t (last position: none)
    target_completion = np.zeros((n, p + t), dtype=bool)
    target_completion[:, p - 1 : p + t - 1] = cm
    target_prompt = np.zeros((n, p + t), dtype=bool)
    target_prompt[:, : p - 1] = pm[:, 1:]
    target_padding = ~target_completion & ~target_prompt
    target_padding[:, -1] = False  # the last position predicts nothing
    padding = np.concatenate([~pm, ~cm], axis=1)

    def peak(values: np.ndarray, where: np.ndarray) -> float | None:
        return float(values[where].max()) if where.any() else None

    result = {
        "positions": {
            "prompt_tokens": int(pm.sum()),
            "prompt_padding": int((~pm).sum()),
            "completion_tokens": int(cm.sum()),
            "completion_padding": int((~cm).sum()),
        },
        "max_abs_grad": {
            "hidden_predicting_completion": peak(hid, target_completion),
            "hidden_predicting_prompt": peak(hid, target_prompt),
            "hidden_predicting_padding": peak(hid, target_padding),
            "embedding_of_padding": peak(emb, padding),
            "embedding_of_prompt": peak(emb, np.concatenate([pm, np.zeros_like(cm)], axis=1)),
        },
    }
    problems = []
    g = result["max_abs_grad"]
    if not g["hidden_predicting_completion"]:
        problems.append("no gradient on any completion token: the probe saw no loss at all")
    if (g["hidden_predicting_prompt"] or 0.0) > tol:
        problems.append(f"the loss predicts prompt tokens (gradient {g['hidden_predicting_prompt']:.3g})")
    if (g["hidden_predicting_padding"] or 0.0) > tol:
        problems.append(f"the loss predicts padding tokens (gradient {g['hidden_predicting_padding']:.3g})")
    if (g["embedding_of_padding"] or 0.0) > tol:
        problems.append(
            f"padding embeddings get gradient {g['embedding_of_padding']:.3g}: attention is not masked"
        )
    exercised = []
    if not result["positions"]["prompt_padding"]:
        exercised.append("no prompt padding in the batch (all prompts equally long)")
    if not result["positions"]["completion_padding"]:
        exercised.append("no completion padding in the batch")
    result.update(passed=not problems, problems=problems, not_exercised=exercised)
    return result


@contextmanager
def gradient_probe(model: Any) -> Iterator[dict[str, Any]]:
    """Capture the input embeddings and the decoder's last hidden state of ``model``'s next forward.

    The embedding output is replaced by a leaf tensor that requires grad, so the probe works for
    LoRA (frozen embeddings) too. After ``loss.backward()``, ``probe["embed"].grad`` and
    ``probe["hidden"].grad`` hold the gradients (``[N, L, H]``).
    """
    base = unwrap_peft(model)
    probe: dict[str, Any] = {}

    def on_embed(module: Any, args: Any, output: Any) -> Any:
        leaf = output.detach().requires_grad_(True)
        probe["embed"] = leaf
        return leaf

    def on_decoder(module: Any, args: Any, output: Any) -> None:
        hidden = output.last_hidden_state if hasattr(output, "last_hidden_state") else output[0]
        hidden.retain_grad()
        probe["hidden"] = hidden

    handles = [
        base.get_input_embeddings().register_forward_hook(on_embed),
        base.get_decoder().register_forward_hook(on_decoder),
    ]
    try:
        yield probe
    finally:
        for h in handles:
            h.remove()


def probe_loss(
    model: Any, loss_fn: Callable[[], Any], prompt_mask: Any, completion_mask: Any
) -> dict[str, Any]:
    """Run ``loss_fn()`` (one forward of ``model``) under :func:`gradient_probe`, backward, check."""
    model.zero_grad(set_to_none=True)
    with gradient_probe(model) as probe:
        loss = loss_fn()
        loss.backward()
    if "embed" not in probe or "hidden" not in probe:
        raise RuntimeError("the loss did not run a forward pass of the policy")
    hid = probe["hidden"].grad
    emb = probe["embed"].grad
    hid = (
        hid.float().norm(dim=-1) if hid is not None else probe["hidden"].new_zeros(probe["hidden"].shape[:2])
    )
    emb = emb.float().norm(dim=-1) if emb is not None else probe["embed"].new_zeros(probe["embed"].shape[:2])
    model.zero_grad(set_to_none=True)
    out = mask_gradient_check(hid.cpu(), emb.cpu(), prompt_mask.cpu(), completion_mask.cpu())
    out["loss"] = float(loss.detach())
    return out


def end_early(ids: Any, mask: Any, rows: Sequence[int], eos: int, pad: int) -> None:
    """Make completions ``rows`` end with EOS halfway (in place), as a sampled early stop would.

    A row that already stopped before then is left alone. The kept part is marked trainable, as
    the trainer marks a completion that ended with EOS (``mask_truncated_completions`` masks only
    completions that hit the length cap).
    """
    width = ids.shape[1]
    cut = max(1, width // 2)
    for r in rows:
        if (ids[r, :cut] == eos).any():
            continue
        ids[r, cut - 1] = eos
        ids[r, cut:] = pad
        mask[r, :cut] = 1
        mask[r, cut:] = 0


def mask_rows(rows: Sequence[Mapping[str, Any]], render: Callable[[Mapping[str, Any]], int]) -> list[Any]:
    """Two prompts of different rendered lengths (shortest and longest), so there is prompt padding."""
    ordered = sorted(rows, key=render)
    return [ordered[0], ordered[-1]] if len(ordered) > 1 else list(ordered)
