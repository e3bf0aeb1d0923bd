"""One script per page, listed by `dashboard/navigation.py` (not in a folder named pages/: Streamlit would
list that folder as a second menu)."""
