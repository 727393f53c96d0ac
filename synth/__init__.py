"""LLM labeling: task specs (prompt + JSON schema + parser per task), LLM engines (vLLM via
``ray.data.llm``, OpenAI-compatible HTTP, local transformers) and span grounding.

Must not import Ray Train or MLflow, nor ``gliner_core`` (exchange plain dicts / Arrow).
"""
