"""Model selection: span-level evaluation, weight interpolation and the promotion decision."""
