"""Provider specs: parse, compile and check YAML families and provider files; pure (no I/O beyond reading files)."""
