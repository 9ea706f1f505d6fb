"""Models: the embedded tiny model, hub/local base models, and loading any checkpoint as a policy.

The tiny model is a real Qwen2-architecture causal LM with a character-level tokenizer and a
ChatML-style chat template, saved in Hugging Face format so every stage loads it with
``AutoModelForCausalLM`` / ``AutoTokenizer`` exactly as it would load Qwen2.5-7B.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from rlpipe.tracking.io import atomic_path

log = logging.getLogger(__name__)

SPECIAL_TOKENS = ["<|pad|>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
ADAPTER_CONFIG = "adapter_config.json"
# transformers' process-wide switch for Hub kernels (``kernels`` package): rlpipe's jobs set it from
# the experiment's ``hub_kernels`` option (``rlpipe.runtime.init_job``); unset means off for rlpipe.
HUB_KERNELS_ENV = "USE_HUB_KERNELS"


def hub_kernels_enabled() -> bool:
    """Whether this process may swap in kernels from the Hugging Face Hub (off unless asked for).

    transformers (>= 5.25, with ``kernels`` installed) loads every model with ``use_kernels=True``
    unless told otherwise, and ``model.train()`` then fetches ``kernels-community/*`` from the Hub:
    a crash on an offline compute node, and online whatever code the Hub serves that day.
    """
    return os.environ.get(HUB_KERNELS_ENV, "NO").strip().upper() in ("1", "YES", "TRUE", "ON")


def unwrap_peft(model: Any) -> Any:
    """The transformers model under a PEFT wrapper (the model itself if unwrapped): it holds the
    injected, active LoRA layers, so it computes what the wrapper does without PEFT's forward hooks."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def load_pretrained(model_class: Any, path: str | os.PathLike[str], **kwargs: Any) -> Any:
    """``model_class.from_pretrained(path)`` with Hub kernels only when the experiment asked for them.

    Every model rlpipe loads goes through here (policy, reference, critic backbone, evaluation).
    """
    return model_class.from_pretrained(path, use_kernels=hub_kernels_enabled(), **kwargs)


def build_char_tokenizer() -> Any:
    """A character-level tokenizer over printable ASCII with ChatML special tokens."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for char in [chr(c) for c in range(32, 127)] + ["\n"]:
        vocab[char] = len(vocab)
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<|endoftext|>"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    backend.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|pad|>",
        unk_token="<|endoftext|>",
        additional_special_tokens=SPECIAL_TOKENS,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.padding_side = "left"
    return tokenizer


def tiny_config(arch: dict[str, int], vocab_size: int, pad_token_id: int, eos_token_id: int) -> Any:
    """The ``Qwen2Config`` of the tiny model with architecture ``arch`` (also used to check LoRA targets)."""
    from transformers import Qwen2Config

    return Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=arch["hidden_size"],
        intermediate_size=arch["intermediate_size"],
        num_hidden_layers=arch["num_layers"],
        num_attention_heads=arch["num_heads"],
        num_key_value_heads=arch["num_kv_heads"],
        max_position_embeddings=arch["max_positions"],
        tie_word_embeddings=True,
        pad_token_id=pad_token_id,
        eos_token_id=eos_token_id,
        bos_token_id=None,
    )


def build_tiny_model(out_dir: str | os.PathLike[str], arch: dict[str, int], seed: int) -> int:
    """Create a randomly initialised tiny Qwen2 + tokenizer in HF format at ``out_dir``.

    Returns the parameter count. The directory appears atomically.
    """
    import torch
    from transformers import GenerationConfig, Qwen2ForCausalLM

    tokenizer = build_char_tokenizer()
    torch.manual_seed(seed)
    config = tiny_config(arch, len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id)
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    n_params = sum(p.numel() for p in model.parameters())
    with atomic_path(out_dir, directory=True) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    log.info("built tiny Qwen2 with %d parameters at %s", n_params, out_dir)
    return n_params


def fetch_hub_model(repo_id: str, revision: str | None, out_dir: str | os.PathLike[str]) -> None:
    """Download a hub model into the HF cache and record where it is (the weights stay in HF_HOME).

    With ``HF_HUB_OFFLINE=1`` a model missing from the cache fails at once naming the repo and the
    command that fetches it.
    """
    from huggingface_hub import snapshot_download

    try:
        path = snapshot_download(repo_id=repo_id, revision=revision)
    except Exception as exc:  # the hub raises several unrelated types for "not available"
        raise RuntimeError(
            f"model {repo_id!r} (revision {revision or 'main'}) is not available: {exc}. "
            f"On a machine with network run: huggingface-cli download {repo_id}"
            + (f" --revision {revision}" if revision else "")
        ) from exc
    with atomic_path(out_dir, directory=True) as tmp:
        (tmp / "source.json").write_text(json.dumps({"repo_id": repo_id, "revision": revision, "path": path}))


def resolve_model_dir(path: str | os.PathLike[str]) -> str:
    """The directory holding weights for ``path``: itself, or where a ``source.json`` points."""
    source = Path(path) / "source.json"
    if source.exists():
        return json.loads(source.read_text())["path"]
    return str(path)


def check_chat_template(model_dir: str | os.PathLike[str], name: str | None = None) -> None:
    """Fail at model preparation, naming the model, when its tokenizer cannot render a chat prompt.

    Training and evaluation render every prompt with the chat template, so a base model without a
    usable one (a base, non-chat checkpoint; a broken template) would otherwise fail only in a GPU
    job, or worse, train on prompts that silently lost their content.
    """
    from transformers import AutoTokenizer

    path = resolve_model_dir(model_dir)
    what = f"model {name!r} ({path})" if name else f"model at {path}"
    tokenizer = AutoTokenizer.from_pretrained(path)
    if not tokenizer.chat_template:
        raise ValueError(
            f"{what} has no chat template: set tokenizer.chat_template in its tokenizer_config.json "
            "or use a chat/instruct model"
        )
    try:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": "ping"}], add_generation_prompt=True, tokenize=False
        )
    except Exception as exc:
        raise ValueError(f"chat template of {what} cannot render a user prompt: {exc}") from exc
    if "ping" not in text:
        raise ValueError(f"chat template of {what} drops the user message (rendered: {text!r})")


def load_policy(
    path: str | os.PathLike[str], base: str | os.PathLike[str] | None = None, device: str | None = None
) -> tuple[Any, Any]:
    """Load (model, tokenizer) from a full checkpoint, or a LoRA adapter on top of ``base``.

    Adapters are merged into the base weights so evaluation runs at full speed. With ``device="cuda"``
    the weights are read straight onto the GPU in bfloat16 (no float32 copy in host memory first,
    which was most of an evaluation job's load time on the GPU).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    placement: dict[str, Any] = {}
    if device is not None and device != "cpu":
        import torch

        placement = {"device_map": device, "dtype": torch.bfloat16}
    path = Path(resolve_model_dir(path))
    if (path / ADAPTER_CONFIG).exists():
        from peft import PeftModel

        if base is None:
            raise ValueError(f"{path} holds a LoRA adapter but no base model was given")
        base_dir = resolve_model_dir(base)
        # Merged in float32 as on the CPU, then cast: bfloat16 merging would round the update away.
        on_device = {k: v for k, v in placement.items() if k != "dtype"}
        model = load_pretrained(AutoModelForCausalLM, base_dir, **on_device)
        model = PeftModel.from_pretrained(model, str(path)).merge_and_unload()
        if "dtype" in placement:
            model = model.to(placement["dtype"])
        tokenizer = AutoTokenizer.from_pretrained(base_dir)
    else:
        model = load_pretrained(AutoModelForCausalLM, path, **placement)
        tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    model.eval()
    return model, tokenizer
