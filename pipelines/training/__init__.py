"""Training with Ray Train: the epoch plan, the worker loop, the driver and the step-metric sender."""
