"""Routing: run a config and its fallbacks, recording every attempt."""

from .chain import collect_fallback_chain, execute

__all__ = ["execute", "collect_fallback_chain"]
