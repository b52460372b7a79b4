"""Proposers write candidate reward code: the offline term library, or an LLM (its own issue)."""
