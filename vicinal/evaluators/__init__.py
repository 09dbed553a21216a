"""Built-in evaluators: one file each, registered with ``@register_evaluator``."""
