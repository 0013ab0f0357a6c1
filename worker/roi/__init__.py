"""The ROI methodology and what is read and shown from the summaries: analytics and the report."""
