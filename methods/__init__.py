"""Built-in vicinal methods, installed as ``vicinal.methods``: one file per method family.

The registry reads every module's ``@register_method("name")`` decorators from its source when first
used, and imports a module when one of its methods is used (so listing them does not load torch).
Adding a method means adding a file, nothing else.
"""
