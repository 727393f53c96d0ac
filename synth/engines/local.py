"""Local engine: a Hugging Face causal LM in process, decoding constrained by xgrammar.

xgrammar is the grammar engine vLLM uses for structured outputs, so the schema is compiled the
same way here as on the cluster. The prompt goes through the tokenizer's own chat template.
Generation stops at `max_tokens`: a cut answer is not valid JSON and its row becomes
`invalid_json` (finish_reason "length"); nothing raises.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from synth.config import LocalEngineConfig
from synth.engines.base import BatchEngine, Completion, Request

log = logging.getLogger(__name__)


class LocalEngine(BatchEngine):
    def __init__(self, config: LocalEngineConfig):
        import torch
        import xgrammar as xgr
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.config = config
        self.model_id = config.model
        if config.torch_threads:
            torch.set_num_threads(config.torch_threads)
        self.tokenizer = AutoTokenizer.from_pretrained(config.model, local_files_only=config.local_files_only)
        if not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(
                f"tokenizer of {config.model!r} has no chat template: use an instruction-tuned model"
            )
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        model: Any = AutoModelForCausalLM.from_pretrained(
            config.model, local_files_only=config.local_files_only, dtype=getattr(torch, config.dtype)
        )
        self.model: Any = model.to(config.device).eval()
        self.stop_ids = self._stop_ids()
        vocab_size = self.model.get_output_embeddings().weight.shape[0]
        info = xgr.TokenizerInfo.from_huggingface(
            self.tokenizer, vocab_size=vocab_size, stop_token_ids=self.stop_ids
        )
        self.compiler = xgr.GrammarCompiler(info)
        self._grammars: dict[str, Any] = {}

    def _stop_ids(self) -> list[int]:
        ids: list[int] = []
        eos = getattr(self.model.generation_config, "eos_token_id", None)
        for value in (eos, self.tokenizer.eos_token_id):
            if value is None:
                continue
            for i in value if isinstance(value, list) else [value]:
                if int(i) not in ids:
                    ids.append(int(i))
        if not ids:
            raise ValueError(f"{self.config.model!r} defines no end-of-sequence token")
        return ids

    def _grammar(self, schema: dict[str, Any]) -> Any:
        key = json.dumps(schema, sort_keys=True)
        if key not in self._grammars:
            # any_whitespace=False: compact JSON, fewer tokens, no runaway whitespace
            self._grammars[key] = self.compiler.compile_json_schema(json.dumps(schema), any_whitespace=False)
        return self._grammars[key]

    def generate(self, requests: list[Request]) -> list[Completion]:
        out: list[Completion] = []
        size = self.config.batch_size
        for i in range(0, len(requests), size):
            chunk = requests[i : i + size]
            try:
                out.extend(self._generate(chunk))
            except Exception as err:  # one bad batch must not lose rows
                log.exception("local generation failed for %d requests", len(chunk))
                out.extend(Completion(error=f"{type(err).__name__}: {err}") for _ in chunk)
        return out

    def _generate(self, requests: list[Request]) -> list[Completion]:
        import torch
        from transformers import GenerationConfig
        from xgrammar.contrib.hf import LogitsProcessor

        encoded: Any = self.tokenizer.apply_chat_template(
            [r.messages for r in requests],
            add_generation_prompt=True,
            tokenize=True,
            padding=True,
            return_dict=True,
            return_tensors="pt",
        )
        enc = encoded.to(self.config.device)
        temperature = max(r.temperature for r in requests)
        generation = GenerationConfig(
            max_new_tokens=max(r.max_tokens for r in requests),
            do_sample=temperature > 0,
            temperature=temperature if temperature > 0 else None,
            top_p=None,
            top_k=None,
            eos_token_id=self.stop_ids,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        processor = LogitsProcessor([self._grammar(r.schema) for r in requests])
        torch.manual_seed(self.config.seed)
        with torch.inference_mode():
            output = self.model.generate(**enc, generation_config=generation, logits_processor=[processor])
        prompt_len = enc["input_ids"].shape[1]
        prompt_tokens = enc["attention_mask"].sum(dim=1).tolist()
        completions = []
        for row, new in enumerate(output[:, prompt_len:].tolist()):
            stopped = next((j for j, t in enumerate(new) if t in self.stop_ids), None)
            tokens = new if stopped is None else new[:stopped]
            tokens = [t for t in tokens if t != self.tokenizer.pad_token_id]
            completions.append(
                Completion(
                    text=str(self.tokenizer.decode(tokens, skip_special_tokens=True)),
                    prompt_tokens=int(prompt_tokens[row]),
                    completion_tokens=len(tokens),
                    finish_reason="stop" if stopped is not None else "length",
                )
            )
        return completions

    def close(self) -> None:
        self._grammars.clear()
