"""One script per page; `dashboard/navigation.py` lists them."""
