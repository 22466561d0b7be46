"""The only package that imports Streamlit: shared widgets, caches and figure builders."""
