"""Routing: targets, policies (retry, fallback, cooldown, deadline), routes files and the Router."""

from .chain import collect_fallback_chain, execute, execute_targets
from .cooldown import CooldownStore, InMemoryCooldowns, default_cooldowns, open_cooldowns
from .policy import RoutePolicy, error_kind, parse_duration
from .router import Plan, Router, get_router, load_routes, reset_router
from .routes import Route, Target

__all__ = [
    "execute", "execute_targets", "collect_fallback_chain", "CooldownStore",
    "InMemoryCooldowns", "open_cooldowns", "default_cooldowns", "RoutePolicy", "error_kind", "parse_duration", "Plan", "Router", "get_router",
    "load_routes", "reset_router", "Route", "Target",
]
