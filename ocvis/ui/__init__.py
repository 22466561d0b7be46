"""The only package that imports Streamlit: shared widgets, caches and figure builders."""
# pandas is imported here, in the first script run and before any job thread exists:
# plotly checks ``sys.modules["pandas"]`` without importing it, and when a job thread
# (a UMAP projection imports pandas through its dependencies) is half-way through that
# import, a page building a figure got the partially initialised module
# ("partially initialized module 'pandas' has no attribute 'Series'"; seen by
# bench/bench_latent_open.py on a fresh server).
import pandas  # noqa: F401
