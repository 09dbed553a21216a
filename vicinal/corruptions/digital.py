"""digital corruptions."""
