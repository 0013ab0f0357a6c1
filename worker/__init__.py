"""roi-worker: exact, exactly-once ROI accounting for automation pattern executions."""

__version__ = "0.1.0"
