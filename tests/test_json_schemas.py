"""The committed JSON Schemas match the loader's models, and every built-in file passes them
(what an editor with the yaml-language-server line checks as you type)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from tarash_router.tools.schemas import SCHEMA_KINDS, json_schema

PACKAGE = Path(__file__).resolve().parents[1] / "tarash_router"
REPO = PACKAGE.parent
SCHEMAS = PACKAGE / "schemas"


@pytest.mark.parametrize("kind", SCHEMA_KINDS)
def test_committed_schema_matches_the_loader(kind):
    committed = json.loads((SCHEMAS / f"{kind}.schema.json").read_text())
    assert committed == json_schema(kind), (
        f"tarash_router/schemas/{kind}.schema.json is stale: run "
        f"`tarash-router schema {kind} > tarash_router/schemas/{kind}.schema.json`")


def _builtin_files() -> list[tuple[Path, str]]:
    files = [(p, "provider" if p.name == "provider.yaml" else "family")
             for p in sorted((REPO / "provider_specs").rglob("*.yaml"))]
    return files + [(p, "routes") for p in sorted((REPO / "routes").rglob("*.yaml"))]


FILES = _builtin_files()


class _Yaml12Loader(yaml.SafeLoader):
    """YAML 1.2 booleans (only true/false), as the spec loader reads them."""


_Yaml12Loader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", __import__("re").compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


@pytest.mark.parametrize(("path", "kind"), FILES, ids=[str(p.relative_to(REPO)) for p, _ in FILES])
def test_builtin_file_passes_its_schema_and_names_it(path, kind):
    text = path.read_text()
    first = text.splitlines()[0]
    expected = f"$schema={Path('../' * (len(path.relative_to(REPO).parts) - 1))}/tarash_router/schemas/{kind}.schema.json"
    assert first.startswith("# yaml-language-server:") and first.endswith(expected), first
    schema = json.loads((SCHEMAS / f"{kind}.schema.json").read_text())
    data = yaml.load(text, Loader=_Yaml12Loader)
    data = json.loads(json.dumps(data, default=str))  # dates as strings, as an editor sees them
    jsonschema.validate(data, schema)
