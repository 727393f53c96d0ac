"""Weak supervision: GLiNER prompt views, labeling functions, span alignment, the label model and the
merge into training rows."""
