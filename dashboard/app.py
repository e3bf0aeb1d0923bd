"""The dashboard's entry point: `streamlit run dashboard/app.py` (`twin dashboard`, `make run`).

Each page is a script under views/ (dashboard/navigation.py lists them); this file sets the page up,
names the lake it reads, and runs the page the URL asks for. The root URL opens the OEE trend under its
own address (/oee), so that a link to /oee?shift=... and the menu agree.
"""

from __future__ import annotations

import streamlit as st

from dashboard.data import root
from dashboard.navigation import PAGES, START
from twin_pipeline.lib.settings import dagster_url

st.set_page_config(page_title="Industrial twin", page_icon="🏭", layout="wide")
pages = {
    spec.url_path: st.Page(spec.script, title=spec.title, url_path=spec.url_path, icon=spec.icon) for spec in PAGES
}


def _start() -> None:
    st.switch_page(pages[START], query_params=st.query_params.to_dict())


sections: dict[str, list[st.Page]] = {"": [st.Page(_start, title="Start", default=True, visibility="hidden")]}
for spec in PAGES:
    sections.setdefault(spec.section, []).append(pages[spec.url_path])
page = st.navigation(sections)
st.sidebar.caption(f"Lake: `{root().uri}`  \nDagster: [{dagster_url()}]({dagster_url()})")
page.run()
