"""Ray Data stages and the Ray Train loop, the self-training orchestration
(synth -> weak-label -> merge -> train -> evaluate -> register) and MLflow logging.

Model math stays in ``gliner_core``.
"""
