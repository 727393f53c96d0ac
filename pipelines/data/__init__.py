"""Data in and out: documents, gold rows, the span column, storage on local disk or object storage."""
