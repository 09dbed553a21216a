"""Shipped suite definitions (TOML), installed as package data of ``vicinal.suites``."""
