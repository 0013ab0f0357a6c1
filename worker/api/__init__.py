"""`roi-worker api`: the read API and HTTP ingestion (docs/api.md).

`app.py` declares the endpoints, `models.py` their bodies, `ingest.py` turns a POSTed body into
validated events, `backends.py` holds the PostgreSQL pool and the Kafka producer, `server.py`
runs it all under uvicorn.
"""
