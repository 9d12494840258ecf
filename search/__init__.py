"""Architecture search: `choice(...)` spaces, the Optuna driver, evaluators."""
