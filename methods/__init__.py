"""Built-in vicinal methods, installed as ``vicinal.methods``: one file per method family.

Every module here is imported when the registry is first used; its ``@register_method`` decorators
do the rest. Adding a method means adding a file, nothing else.
"""
