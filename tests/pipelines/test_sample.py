"""The shipped sample (`sample/`): exactly what its script writes, and no leakage from the
dev set into the gazetteers the embedded default uses."""

from __future__ import annotations

import importlib.util
import json
from types import ModuleType

from pipelines.config import SAMPLE_DIR, PipelineConfig
from pipelines.data.read import read_gold
from pipelines.weak.labeling_functions import apply_labeling_functions, read_gazetteer


def make_sample() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_sample", SAMPLE_DIR / "make_sample.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipped_files_are_what_make_sample_writes():
    built = make_sample().build()
    shipped = {p.name for p in SAMPLE_DIR.iterdir() if p.suffix in {".jsonl", ".txt"}}
    assert shipped == set(built)
    for name, content in built.items():
        assert (SAMPLE_DIR / name).read_text(encoding="utf-8") == content, (
            f"{name} differs from what make_sample.py writes: run python sample/make_sample.py"
        )


def entities(path: str) -> set[str]:
    return {row["text"][s["start"] : s["end"]].casefold() for row in read_gold(path) for s in row["spans"]}


def test_no_dev_entity_is_a_name_in_a_shipped_gazetteer():
    config = PipelineConfig()
    lfs = config.weak_label.labeling_functions
    assert lfs.gazetteers, "the embedded default ships a gazetteer"
    dev = entities(config.data.dev_gold)
    assert len(dev) > 50
    for gazetteer in lfs.gazetteers:
        names = {name.casefold() for name in read_gazetteer(gazetteer.path, gazetteer.label)}
        assert names and not dev & names, f"dev entities in {gazetteer.path}: {sorted(dev & names)}"
    # the check is not vacuous: the gazetteer does find locations in the corpus (not in the dev set)
    import pyarrow as pa

    corpus = [json.loads(line)["text"] for line in (SAMPLE_DIR / "corpus.jsonl").read_text().splitlines()]
    texts = pa.table({"doc_id": [str(i) for i in range(len(corpus))], "text": corpus})
    found = apply_labeling_functions(texts, lfs).column("spans").to_pylist()
    gazetteer_spans = [s for spans in found for s in spans if s["origin"].startswith("lf:gazetteer")]
    assert len(gazetteer_spans) > 20
