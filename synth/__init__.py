"""LLM labeling: task specs (prompt + JSON schema + parser per task), LLM engines (vLLM via
``ray.data.llm``, OpenAI-compatible HTTP, local transformers) and span grounding.

Must not import Ray Train or MLflow, nor ``gliner_core`` (exchange plain dicts / Arrow).

    from synth import SynthConfig, NerTask, LocalEngineConfig, run_synth
    config = SynthConfig(tasks=[NerTask(labels=["person", "organisation"])],
                         engine=LocalEngineConfig(model="path/to/model"), cache_dir="cache/")
    report = run_synth(documents, config, "out/synth_rows")   # documents: doc_id, text, source
"""

from synth.config import (
    DEFAULT_MODEL,
    STATUSES,
    FewShotExample,
    GenerationConfig,
    GroundingConfig,
    HttpEngineConfig,
    LocalEngineConfig,
    NerTask,
    OpenIeTask,
    OpenNerTask,
    QaTask,
    RelationTask,
    SummaryTask,
    SynthConfig,
    VllmEngineConfig,
    load_config,
)
from synth.grounding import Grounder
from synth.rows import SPAN_TYPE, SPANS_TYPE, SYNTH_SCHEMA
from synth.stage import SynthBatch, SynthReport, run_synth, summarize, synthesize, write_synth_rows

__all__ = [
    "DEFAULT_MODEL",
    "SPANS_TYPE",
    "SPAN_TYPE",
    "STATUSES",
    "SYNTH_SCHEMA",
    "FewShotExample",
    "GenerationConfig",
    "Grounder",
    "GroundingConfig",
    "HttpEngineConfig",
    "LocalEngineConfig",
    "NerTask",
    "OpenIeTask",
    "OpenNerTask",
    "QaTask",
    "RelationTask",
    "SummaryTask",
    "SynthBatch",
    "SynthConfig",
    "SynthReport",
    "VllmEngineConfig",
    "load_config",
    "run_synth",
    "summarize",
    "synthesize",
    "write_synth_rows",
]
