"""Commands that run a generation for a person at a terminal: `generate` and `models`."""
