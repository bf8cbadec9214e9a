"""Every test runs against a real PostgreSQL + pgvector: DATABASE_URL, or the embedded server."""

pytest_plugins = ["dealhunter_vectors.testing"]
