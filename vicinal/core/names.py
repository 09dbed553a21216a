"""The one rule for names that users and plugins choose (methods, evaluators, models, datasets, suites).

Names become folder names under the results directory and appear in terminal tables, HTML and LaTeX, so
they are restricted to a conservative character set: letters, digits, ``-`` and ``_``, starting with a
letter or digit. That rules out path parts (``../x``), separators used by the command line (``,`` in
``--methods``, ``.`` in ``--set METHOD.PARAM``) and markup (``[bold]``, ``<script>``).
"""

from __future__ import annotations

import re

from vicinal.core.errors import VicinalError

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def check_name(name: object, kind: str) -> str:
    """``name`` if it follows the rule; otherwise one error that says what is allowed."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise VicinalError(
            f"invalid {kind} name {name!r}: use 1–64 letters, digits, '-' or '_', starting with a letter "
            "or digit"
        )
    return name
