"""Typed configuration of a self-training job (`PipelineConfig`), one module per concern:

base        Section (unknown keys are errors), Workers, deprecations
data        DataConfig, GoldSource, ModelConfig, SAMPLE_DIR
weak        WeakLabelConfig, PromptViewsConfig, LabelingFunctionsConfig (gazetteers, regexes),
            LabelModelConfig, MergeConfig, the synth stage's modes
training    TrainConfig
selection   EvalConfig, LoopConfig
registry    TrackingConfig
ops         ExportConfig, DriftConfig, ReviewConfig, LabelStudioConfig
job         PipelineConfig: every section, one seed, the defaults that differ per section
"""

from pipelines.config.base import Section, Workers
from pipelines.config.data import SAMPLE_DIR, DataConfig, GoldSource, ModelConfig
from pipelines.config.job import SECTION_DEFAULTS, PipelineConfig
from pipelines.config.ops import REFERENCE_FILE, DriftConfig, ExportConfig, LabelStudioConfig, ReviewConfig
from pipelines.config.registry import TrackingConfig
from pipelines.config.selection import EvalConfig, LoopConfig
from pipelines.config.training import TrainConfig
from pipelines.config.weak import (
    GazetteerConfig,
    LabelingFunctionsConfig,
    LabelModelConfig,
    MergeConfig,
    NerModelConfig,
    PromptViewsConfig,
    RegexConfig,
    SourceConfig,
    SynthGenerate,
    SynthOff,
    SynthRows,
    SynthStageConfig,
    WeakLabelConfig,
    sample_labeling_functions,
)

__all__ = [
    "REFERENCE_FILE",
    "SAMPLE_DIR",
    "SECTION_DEFAULTS",
    "DataConfig",
    "DriftConfig",
    "EvalConfig",
    "ExportConfig",
    "GazetteerConfig",
    "GoldSource",
    "LabelModelConfig",
    "LabelStudioConfig",
    "LabelingFunctionsConfig",
    "LoopConfig",
    "MergeConfig",
    "ModelConfig",
    "NerModelConfig",
    "PipelineConfig",
    "PromptViewsConfig",
    "RegexConfig",
    "ReviewConfig",
    "Section",
    "SourceConfig",
    "SynthGenerate",
    "SynthOff",
    "SynthRows",
    "SynthStageConfig",
    "TrackingConfig",
    "TrainConfig",
    "WeakLabelConfig",
    "Workers",
    "sample_labeling_functions",
]
