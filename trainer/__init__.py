"""ember.trainer: the training engine (placeholder until the engine lands)."""
