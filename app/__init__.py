"""Streamlit glue: navigation, shared state, cached queries, figures and widgets. Pages import from here."""
