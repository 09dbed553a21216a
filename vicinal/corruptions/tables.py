"""Per-severity parameters of every corruption, one table per image scale.

Transcribed from the reference generators in hendrycks/robustness: ``make_cifar_c.py`` (32 px),
``make_tinyimagenet_c.py`` (64 px) and ``make_imagenet_c.py`` (224 px). Each entry lists severities 1–5.
"""

from typing import Any

TABLES: dict[str, dict[str, list[Any]]] = {"cifar": {}, "tinyimagenet": {}, "imagenet": {}}

# --- noise, blur, digital (filled by noise.py / blur.py / digital.py owners) ---

# --- weather: snow, frost, fog, spatter ---
