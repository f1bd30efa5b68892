"""Tools that are not runtime: the OpenAPI scaffolder, example checks, JSON Schemas for editors."""
