"""The JSON Schemas of the three file kinds, as committed under `tarash_router/schemas/` for editors
(`tarash-router schema KIND`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from ..routing.routes import RoutesFile
from ..specs.schema import FamilyFile, ProviderFile

SCHEMA_KINDS = ("provider", "family", "routes")


def json_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of a file kind: `provider`, `family` or `routes`."""
    models: dict[str, type[BaseModel]] = {"provider": ProviderFile, "family": FamilyFile, "routes": RoutesFile}
    model = models[kind]
    schema = model.model_json_schema(by_alias=True)
    if kind == "family":  # what the loader checks after `extends` is resolved, as far as a schema can say it
        schema["allOf"] = [{"anyOf": [{"required": ["models"]}, {"required": ["abstract"]}]},
                           {"anyOf": [{"required": ["modality"]}, {"required": ["extends"]}]}]
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = f"tarash-router {kind} file, spec_version 1"
    return schema


__all__ = ["json_schema", "SCHEMA_KINDS"]
