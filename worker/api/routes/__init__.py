"""The endpoints of `roi-worker api` (docs/api.md), one router per group.

`patterns.py` the ROI reads, `usage.py` the usage statistics, `ingestion.py` the POST of events,
`health.py` the probes, `docs.py` Swagger UI served offline; `common.py` what they share (path
prefixes, documented answers, access).
Each module's `router(...)` takes the backends it uses; worker.api.app includes them.
"""
