"""A Griffe extension for the API reference: vicinal's docstrings name other objects with Sphinx roles
(:class:`~vicinal.store.results.Result`, :func:`run`), which Markdown would show as literal text. Each role
becomes a code span of the name it shows (``Result`` for ``~vicinal.store.results.Result``, the whole
path otherwise). No published Griffe extension converts inline roles (griffe's Sphinx style parses field
lists only); a cross-reference link is not used because a role may name an object the reference does not
render, which the strict build would report as a broken link."""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension, Object

ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|exc|obj):`(~?)([^`<>]+)`")


def plain(text: str) -> str:
    """Sphinx roles in ``text`` as Markdown code spans."""
    return ROLE.sub(lambda m: f"`{m.group(2).rsplit('.', 1)[-1] if m.group(1) else m.group(2)}`", text)


class SphinxRoles(Extension):
    def on_instance(self, *, obj: Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = plain(obj.docstring.value)
