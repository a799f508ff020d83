"""Pure ASGI middleware: request context (id, access log, metrics, headers), hosts, limits."""
