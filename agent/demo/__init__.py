"""The bundled demo: a small HTTP service, a fleet of it, and a regression to heal."""
