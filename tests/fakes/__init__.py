"""In-memory stand-ins for the pipeline's I/O edges (worker.types' protocols, the database)."""
