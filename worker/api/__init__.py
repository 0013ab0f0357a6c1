"""`roi-worker api`: the read API and HTTP ingestion (docs/api.md).

`app.py` builds the application from the routers in `routes/` (one per group of endpoints) and
the handlers of `errors.py`; `responses.py` writes the answers and `models.py` their bodies;
`ingest.py` turns a POSTed body into validated events, `backends.py` holds the PostgreSQL pool
and the Kafka producer, `server.py` runs it all under uvicorn.
"""
