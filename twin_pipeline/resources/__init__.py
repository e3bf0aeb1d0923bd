"""The Dagster resource classes (lake, landing, OEE engines, Power BI); `defs/resources.py` binds them."""
