"""The dashboard's entry point: `streamlit run dashboard/app.py` (`twin dashboard`, `make run`).

Each page is a script under pages/ (dashboard/navigation.py lists them); this file sets the page up,
names the lake it reads, and runs the page the URL asks for.
"""

from __future__ import annotations

import streamlit as st

from dashboard.data import root
from dashboard.navigation import PAGES
from twin_pipeline.lib.settings import dagster_url

st.set_page_config(page_title="Industrial twin", page_icon=":material/factory:", layout="wide")
sections: dict[str, list[st.Page]] = {}
for spec in PAGES:
    sections.setdefault(spec.section, []).append(
        st.Page(spec.script, title=spec.title, url_path=spec.url_path, icon=spec.icon, default=spec.url_path == "oee")
    )
page = st.navigation(sections)
st.sidebar.caption(f"Lake: `{root().uri}`  \nDagster: [{dagster_url()}]({dagster_url()})")
page.run()
