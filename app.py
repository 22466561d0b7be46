"""ocvis: overview page of the dashboard (`streamlit run app.py`)."""
import streamlit as st

from ocvis.ui.common import sidebar

st.set_page_config(page_title="ocvis", page_icon="🔎", layout="wide")
sidebar()

st.title("ocvis — deep one-class classification")
st.markdown(
    "Load images, pick the **normal** class, split it into typical and atypical samples, "
    "train a one-class method with live loss curves, look at its latent space and at "
    "why a sample looks abnormal.\n\n"
    "Start on the **Data** page in the sidebar.")

from ocvis.data import describe_datasets  # noqa: E402  (fast: no dataset is read)

st.subheader("Datasets")
st.dataframe(describe_datasets(), hide_index=True, use_container_width=True)
