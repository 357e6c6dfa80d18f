"""The REST API (FastAPI). OpenAPI is published at /openapi.json."""
