"""A tiny random-weight Llama-architecture chat model, built offline: the stand-in for Llama 3
8B Instruct in tests, benchmarks and the local profile (no download).

The tokenizer is a byte-level BPE trained on a few sentences (any text encodes) with Llama 3's
special tokens, and carries Llama 3 Instruct's own chat template string, so prompts are laid
out exactly as for the real model. The weights are random: the model writes nonsense, but
constrained decoding keeps it schema-valid JSON.
"""

from __future__ import annotations

from pathlib import Path

# The chat template of meta-llama/Meta-Llama-3-8B-Instruct (its tokenizer_config.json).
LLAMA3_CHAT_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
SPECIAL_TOKENS = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
]
_CORPUS = [
    "Ada Lovelace met Charles Babbage in London in June 1833.",
    "The World Bank opened an office in Nairobi, Kenya, on 3 March 2021.",
    'Answer with JSON: {"entities": [{"text": "Paris", "label": "city"}], "answers": null}',
    "Extract every named entity of the document: person, organisation, location, date.",
]


def build_tiny_llama(
    path: str | Path, *, vocab_size: int = 512, hidden_size: int = 64, layers: int = 2, seed: int = 0
) -> Path:
    """Write a tiny Llama chat model (config, random weights, tokenizer with a chat
    template) to `path` and return it; loadable with `AutoModelForCausalLM`/`AutoTokenizer`."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path = Path(path)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>",
        pad_token="<|end_of_text|>",
    )
    tokenizer.chat_template = LLAMA3_CHAT_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = [
        tokenizer.eos_token_id,
        tokenizer.convert_tokens_to_ids("<|end_of_text|>"),
    ]
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
