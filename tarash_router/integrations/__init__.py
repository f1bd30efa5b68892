"""Integrations with other frameworks, each behind its own extra and imported only when asked for
(`import tarash_router.integrations.celery`); `import tarash_router` never loads them."""
