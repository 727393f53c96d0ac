"""From texts and labels to padded model inputs, and back to word spans.

One *window* is one encoder input: the label prompt followed by a run of
consecutive words of one text. Short texts are one window; a text longer than
`max_len` words or than the encoder's position limit is cut into overlapping
windows, and each window *owns* the spans that start in its middle part, so
every span is scored once, with context on both sides.

Also the tokenizer setup the `Encoder` relies on (the prompt's special tokens,
the encoder's token limit) and the checks that keep a label from breaking the
prompt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from gliner_core.config import GLiNERConfig
from gliner_core.text import SURROGATES, Words

Labels = Sequence[str] | Mapping[str, str]

FLERT_TOKEN = "[FLERT]"  # added by the official package too; keeps token ids aligned with its checkpoints
LABELS_TOKENIZER_DIR = "labels_tokenizer"  # where a bi-encoder checkpoint keeps its label tokenizer

# Tokens that give a label prompt structure: a label containing one would add a class slot or
# a separator to the prompt (and silently shift every label after it), so such labels are refused.
RESERVED_LABEL_TOKENS = (FLERT_TOKEN, "<<ENT>>", "<<SEP>>")
# Special tokens of the usual encoders, refused in labels too (checked before a model is loaded).
COMMON_SPECIAL_TOKENS = (
    "[CLS]",
    "[SEP]",
    "[PAD]",
    "[MASK]",
    "[UNK]",
    "<s>",
    "</s>",
    "<pad>",
    "<unk>",
    "<mask>",
)

# -- tokenizer setup ----------------------------------------------------------------------------


def prepare_tokenizer(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """The text tokenizer as the official package sets it up: tokenizers that define bos/eos
    (sentencepiece ones) add them; cls/sep tokenizers are left alone."""
    if hasattr(tokenizer, "add_bos_token") and tokenizer.bos_token_id is not None:
        tokenizer.add_bos_token = True
    if hasattr(tokenizer, "add_eos_token") and tokenizer.eos_token_id is not None:
        tokenizer.add_eos_token = True
    return tokenizer


def prepare_labels_tokenizer(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """A bi-encoder's label tokenizer: pads with eos when it has no pad token (as the official package)."""
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def add_special_tokens(tokenizer: PreTrainedTokenizerBase, config: GLiNERConfig) -> None:
    """Add the prompt's tokens; a uni-encoder's config records the class token's id and the vocab size."""
    tokenizer.add_tokens([FLERT_TOKEN, config.ent_token, config.sep_token], special_tokens=True)
    if config.is_bi_encoder:
        # The official bi-encoder adds the tokens to its tokenizer but not to the
        # encoder (which never sees a prompt): vocab_size and class_token_index stay -1.
        return
    config.class_token_index = int(tokenizer.convert_tokens_to_ids(config.ent_token))  # type: ignore[arg-type]
    config.vocab_size = len(tokenizer)


def max_tokens(tokenizer: PreTrainedTokenizerBase, config: GLiNERConfig) -> int:
    """How many tokens (special tokens included) one encoder pass may take."""
    limits = [512]
    if 0 < tokenizer.model_max_length < 100_000:
        limits = [tokenizer.model_max_length]
    positions = (config.encoder_config or {}).get("max_position_embeddings")
    if positions and (config.encoder_config or {}).get("position_embedding_type", "absolute") == "absolute":
        limits.append(int(positions))
    return min(limits)


# -- labels -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelSet:
    """The labels of one call: what the prompt says, and what the output calls each."""

    prompts: list[str]  # text put after each <<ENT>>
    names: list[str]  # label returned for spans of that prompt


def normalize_labels(labels: Labels) -> LabelSet:
    """Validate labels (a list of names, or {name: description}); duplicates are dropped."""
    if isinstance(labels, str):
        raise ValueError("labels must be a list of strings, not one string: use [label]")
    if isinstance(labels, Mapping):
        pairs = list(labels.items())
    elif isinstance(labels, Sequence):
        pairs = [(label, label) for label in labels]
    else:
        raise ValueError(f"labels must be a list of strings or a mapping, got {type(labels).__name__}")
    if not pairs:
        raise ValueError("labels is empty: give at least one label to extract")
    names: list[str] = []
    prompts: list[str] = []
    for name, prompt in pairs:
        if not isinstance(name, str) or not isinstance(prompt, str):
            raise ValueError(f"labels must be strings, got {name!r}: {prompt!r}")
        if not prompt.strip() or not name.strip():
            raise ValueError("labels must not be empty or blank strings")
        if prompt in prompts:
            continue
        names.append(name)
        prompts.append(prompt)
    return LabelSet(prompts=prompts, names=names)


def check_label_prompts(prompts: Sequence[str], reserved: Sequence[str] = RESERVED_LABEL_TOKENS) -> None:
    """`ValueError` for a label prompt that holds a special token or is not valid Unicode."""
    for prompt in prompts:
        for token in reserved:
            if token and token in prompt:
                raise ValueError(
                    f"label {prompt!r} contains the special token {token!r}, which would corrupt the "
                    "model's prompt: rename the label"
                )
        if SURROGATES.search(prompt):
            raise ValueError(f"label {prompt!r} is not valid Unicode (a lone surrogate)")


# -- windows and batches ------------------------------------------------------------------------


@dataclass
class Window:
    """One encoder input: prompt + words[offset : offset + num_words] of one text."""

    text_index: int
    offset: int  # first word of the window, in the text's word indices
    num_words: int
    input_ids: list[int]
    words_mask: list[int]  # per token: 1-based word index (within window) at first subtoken, else 0
    own_start: int  # window-relative word range whose spans this window reports
    own_end: int


@dataclass
class Batch:
    """Padded tensors for a model's forward, plus where each row came from.

    Bi-encoder training batches also carry the batch's distinct label texts,
    tokenized for the label encoder, and each row's labels as indices into them.
    """

    input_ids: torch.Tensor  # (B, T)
    attention_mask: torch.Tensor  # (B, T)
    words_mask: torch.Tensor  # (B, T)
    text_lengths: torch.Tensor  # (B,)
    windows: list[Window]
    labels_input_ids: torch.Tensor | None = None  # (N, T') distinct label texts (bi-encoder)
    labels_attention_mask: torch.Tensor | None = None  # (N, T')
    label_index: torch.Tensor | None = None  # (B, C) each row's labels, indices into the N
    label_mask: torch.Tensor | None = None  # (B, C) real labels

    def model_inputs(self, device: torch.device | str) -> dict[str, torch.Tensor]:
        inputs = {
            "input_ids": self.input_ids.to(device),
            "attention_mask": self.attention_mask.to(device),
            "words_mask": self.words_mask.to(device),
            "text_lengths": self.text_lengths.to(device),
        }
        for name in ("labels_input_ids", "labels_attention_mask", "label_index", "label_mask"):
            value = getattr(self, name)
            if value is not None:
                inputs[name] = value.to(device)
        return inputs


class Encoder:
    """Tokenizes prompt + words the way the official package does, and cuts windows.

    A bi-encoder's text encoder gets no prompt (its labels go through
    `labels_tokenizer` and the label encoder instead).
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        config: GLiNERConfig,
        max_tokens: int,
        labels_tokenizer: PreTrainedTokenizerBase | None = None,
    ):
        self.tokenizer = tokenizer
        self.labels_tokenizer = labels_tokenizer
        self.config = config
        self.max_tokens = max_tokens  # encoder position limit, special tokens included
        self.window_overlap = 2 * config.max_width  # words shared by neighbouring windows

    def tokenize_labels(self, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Label texts for the bi-encoder's label encoder: input_ids and attention_mask (N, T')."""
        if self.labels_tokenizer is None:
            raise ValueError("this model has no label encoder (it is not a bi-encoder)")
        encoded = self.labels_tokenizer(
            list(prompts), return_tensors="pt", truncation=True, padding="longest"
        )
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}

    def prompt(self, labels: LabelSet) -> list[str]:
        if self.config.labels_encoder:
            return []
        words: list[str] = []
        for prompt in labels.prompts:
            words += [self.config.ent_token, prompt]
        return [*words, self.config.sep_token]

    def windows(self, texts: Sequence[Words], labels: LabelSet) -> list[Window]:
        """All windows of all texts (texts must have at least one word)."""
        prompt = self.prompt(labels)
        P = len(prompt)
        encodings = self._tokenize([prompt + w.tokens for w in texts])
        windows: list[Window] = []
        for index, words in enumerate(texts):
            ids = encodings["input_ids"][index]
            word_ids = encodings.word_ids(index)
            if len(words) <= self.config.max_len and len(ids) <= self.max_tokens:
                mask = first_subtoken_mask(word_ids, P)
                windows.append(Window(index, 0, len(words), list(ids), mask, 0, len(words)))
            else:
                windows += self._cut(index, ids, word_ids, P, len(words))
        return windows

    def truncated_windows(self, texts: Sequence[Words], label_sets: Sequence[LabelSet]) -> list[Window]:
        """One window per text with its own labels; words past the encoder's limits are dropped.

        For training rows (sentences, short passages): a row keeps its first
        `max_len` words, and fewer if its tokens would not fit the encoder.
        """
        encodings = self._tokenize(
            [
                self.prompt(ls) + w.tokens[: self.config.max_len]
                for w, ls in zip(texts, label_sets, strict=True)
            ]
        )
        windows = []
        for index, labels in enumerate(label_sets):
            P = len(self.prompt(labels))
            ids, word_ids = list(encodings["input_ids"][index]), encodings.word_ids(index)
            n_words = min(len(texts[index]), self.config.max_len)
            if len(ids) > self.max_tokens:
                text_end = 1 + max(t for t, w in enumerate(word_ids) if w is not None)
                tail = len(ids) - text_end
                keep = self.max_tokens - tail  # tokens before the closing specials
                if keep <= 0 or all(w is None or w < P for w in word_ids[:keep]):
                    raise ValueError("the labels leave no room for text in the encoder window")
                last_word = max(w for w in word_ids[:keep] if w is not None)
                while keep > 0 and word_ids[keep - 1] == last_word:  # drop a word cut in the middle
                    keep -= 1
                n_words = last_word - P
                ids, word_ids = ids[:keep] + ids[text_end:], word_ids[:keep] + word_ids[text_end:]
            mask = first_subtoken_mask(word_ids, P)
            windows.append(Window(index, 0, n_words, ids, mask, 0, n_words))
        return windows

    def _tokenize(self, sequences: list[list[str]]):
        # Long texts exceed the tokenizer's max length on purpose (they are cut
        # into windows next); `verbose=False` skips the warning that says so.
        # (Raising the logger's level around the call did the same, but every
        # `setLevel` clears the cache of every logger in the process.)
        return self.tokenizer(
            sequences, is_split_into_words=True, truncation=False, padding=False, verbose=False
        )

    def _cut(
        self, index: int, ids: list[int], word_ids: list[int | None], P: int, n_words: int
    ) -> list[Window]:
        """Overlapping windows of a text too long for one encoder pass."""
        prompt_end = min(t for t, w in enumerate(word_ids) if w is not None and w >= P)  # first text token
        text_end = 1 + max(t for t, w in enumerate(word_ids) if w is not None)
        head, tail = ids[:prompt_end], ids[text_end:]  # specials + prompt, closing specials
        pieces: list[list[int]] = [[] for _ in range(n_words)]
        for t in range(prompt_end, text_end):
            w = word_ids[t]
            if w is not None:
                pieces[w - P].append(ids[t])
        budget = self.max_tokens - len(head) - len(tail)
        if budget < self.config.max_width:
            raise ValueError(
                f"the labels take {len(head)} of the encoder's {self.max_tokens} tokens, leaving "
                f"{max(budget, 0)} for text: use fewer or shorter labels"
            )

        bounds: list[tuple[int, int]] = []
        start = 0
        while True:
            end, used = start, 0
            while end < n_words and end - start < self.config.max_len:
                size = min(len(pieces[end]), budget)  # a single over-long word keeps its first tokens
                if used + size > budget:
                    break
                used += size
                end += 1
            bounds.append((start, end))
            if end >= n_words:
                break
            start = max(end - self.window_overlap, start + 1)

        windows = []
        for j, (start, end) in enumerate(bounds):
            own_start = 0 if j == 0 else (start + bounds[j - 1][1]) // 2 - start
            own_end = end - start if j == len(bounds) - 1 else (bounds[j + 1][0] + end) // 2 - start
            input_ids, mask = list(head), [0] * len(head)
            for k, w in enumerate(range(start, end)):
                piece = pieces[w][:budget]
                if not piece:
                    continue  # a word the tokenizer drops entirely: its vector stays zero
                input_ids += piece
                mask += [k + 1] + [0] * (len(piece) - 1)
            input_ids += tail
            mask += [0] * len(tail)
            windows.append(Window(index, start, end - start, input_ids, mask, own_start, own_end))
        return windows


def first_subtoken_mask(word_ids: Sequence[int | None], prompt_words: int) -> list[int]:
    """Per token: the 1-based index of the text word it starts, else 0.

    Token t starts word w when it is the first token with word id w; ids below
    `prompt_words` belong to the prompt. (The official package counts words
    as it meets them, which shifts every later word when the tokenizer drops a
    word entirely, e.g. a lone control character; using the ids avoids that.)
    """
    P = prompt_words
    return [
        (w - P + 1) if w is not None and w >= P and (t == 0 or word_ids[t - 1] != w) else 0
        for t, w in enumerate(word_ids)
    ]


def collate(windows: Sequence[Window], pad_token_id: int) -> Batch:
    """Pad windows into one batch (pad to the longest row of this batch only)."""
    T = max(len(w.input_ids) for w in windows)
    B = len(windows)
    input_ids = torch.full((B, T), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((B, T), dtype=torch.long)
    words_mask = torch.zeros((B, T), dtype=torch.long)
    for i, w in enumerate(windows):
        n = len(w.input_ids)
        input_ids[i, :n] = torch.tensor(w.input_ids)
        attention_mask[i, :n] = 1
        words_mask[i, :n] = torch.tensor(w.words_mask)
    text_lengths = torch.tensor([w.num_words for w in windows], dtype=torch.long)
    return Batch(input_ids, attention_mask, words_mask, text_lengths, list(windows))


def length_sorted_batches(windows: Sequence[Window], batch_size: int) -> list[list[Window]]:
    """Batches of windows of similar token length, so little compute goes to padding."""
    ordered = sorted(windows, key=lambda w: len(w.input_ids))
    return [ordered[i : i + batch_size] for i in range(0, len(ordered), batch_size)]
