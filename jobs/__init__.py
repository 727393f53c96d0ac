"""The command line (``python -m jobs``), Ray job submission and the retraining scheduler.

Pipeline logic stays in ``pipelines``.
"""
