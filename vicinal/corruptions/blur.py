"""blur corruptions."""
