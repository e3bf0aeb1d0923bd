"""The Spark side of the OEE job: `oee_job.py` runs on Databricks or local pyspark; `databricks.yml` deploys it."""
