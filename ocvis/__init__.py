"""ocvis: deep one-class classification, measured and explained.

The library layer of the dashboard: nothing in this package (except ``ocvis.ui``)
imports Streamlit, and heavy dependencies (torch extensions, umap, captum) are imported
lazily so that ``import ocvis`` stays fast.
"""
from ocvis.errors import Cancelled, DataError, OcvisError, OcvisWarning, TrainingError

__version__ = "0.1.0"
__all__ = ["OcvisError", "OcvisWarning", "DataError", "TrainingError", "Cancelled",
           "__version__"]
