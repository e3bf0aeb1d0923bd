"""The web dashboard over gold and silver (and the edge tables, for the live line): Streamlit pages that
show the lake's own columns and `oee.roll_up`'s ratios of sums, never arithmetic of their own.

`streamlit run dashboard/app.py` (what `twin dashboard` and `make run` do) serves it; the lake is the one
`TWIN_LAKE` names (`twin_pipeline/lib/settings.py`), local or in ADLS.
"""
