"""Runs: every stored run, compare two, export, delete, make one the current run."""
import streamlit as st

from ocvis.ui.common import current_run_id, sidebar
from ocvis.ui.figures import loss_figure, metrics_bar
from ocvis.ui.jobs import live_run_curve
from ocvis.ui.runs import run_store, set_current_run
from ocvis.ui.runs_page import (METRICS, pct, runs_table, zip_maker,
                                short_label, metrics_of, compare_table, delete_run)

st.set_page_config(page_title="ocvis · Runs", layout="wide")
st.title("Runs")
flash = st.session_state.pop("runs_flash", None)
if flash:
    getattr(st, flash[0])(flash[1])
runs = run_store().list()
if not runs:
    sidebar()
    st.info("No runs stored yet: train one on the **Train** page.")
    st.stop()

st.caption(f"{len(runs)} run(s) in `{run_store().root}`, newest first.")
st.dataframe(runs_table(runs), hide_index=True, width="stretch", key="runs-table",
             placeholder="–", column_config={
                 "AUROC": st.column_config.NumberColumn(format="%.1f"),
                 "BACC": st.column_config.NumberColumn(format="%.1f"),
                 "train s": st.column_config.NumberColumn(format="%.1f"),
                 "seed": st.column_config.NumberColumn(format="%d"),
                 "reason": st.column_config.TextColumn(width="medium")})
by_id = {r["id"]: r for r in runs}
ids = list(by_id)

# --------------------------------------------------------------------------- manage
st.subheader("Manage a run")
current = current_run_id()
rid = st.selectbox("Run", ids, index=ids.index(current) if current in ids else 0,
                   key="runs_manage", format_func=lambda i: short_label(by_id[i]))
meta = by_id[rid]
c1, c2, c3 = st.columns(3)
usable = meta.get("status") == "done" and meta.get("kind", "experiment") == "experiment"
if c1.button("Set as current run", key="runs_set_current", disabled=not usable,
             help="Pages that show one run (Latent space, Evaluate, Explain) open this one."
             if usable else "Only a finished experiment run can be the current run."):
    set_current_run(rid)
    st.toast(f"Current run: {rid}")
c2.download_button("Export as .zip", zip_maker(run_store().path(rid)), file_name=f"{rid}.zip",
                   mime="application/zip", key="runs_zip", on_click="ignore",
                   help="run.json, history, arrays and weights of this run only")
with c3:
    sure = st.checkbox("I want to delete this run", key="runs_del_ok")
    st.button("Delete", key="runs_delete", type="primary", disabled=not sure,
              on_click=delete_run, args=(rid,))
if meta.get("status") == "broken":
    st.error(f"Broken run: {meta.get('_broken', 'unreadable')}")
elif meta.get("error"):
    st.warning(f"{meta.get('status', '').capitalize()}: {meta['error']}")
if meta.get("status") != "broken":
    with st.expander("Loss curve", expanded=meta.get("status") in ("queued", "running")):
        live_run_curve(rid, "runs-manage")

# --------------------------------------------------------------------------- compare
st.subheader("Compare two runs")
readable = [i for i in ids if by_id[i].get("status") != "broken"]
if len(readable) < 2:
    st.info("Compare needs two readable runs: train another one on the Train page.")
else:
    ca, cb = st.columns(2)
    a_id = ca.selectbox("Run A", readable, index=0, key="runs_cmp_a",
                        format_func=lambda i: short_label(by_id[i]))
    b_id = cb.selectbox("Run B", readable, index=1, key="runs_cmp_b",
                        format_func=lambda i: short_label(by_id[i]))
    if a_id == b_id:
        st.info("Pick two different runs.")
    else:
        ra, rb = by_id[a_id], by_id[b_id]
        for col, r, tag in ((ca, ra, "a"), (cb, rb, "b")):
            col.plotly_chart(loss_figure(run_store().history(r["id"]), height=320),
                             width="stretch", key=f"runs-loss-{tag}")
        t1, t2 = st.columns([2, 3])
        t1.dataframe(compare_table(ra, rb), hide_index=True, width="stretch",
                     key="runs-compare")
        bars = {f"{tag} · {short_label(r)}": {lab: pct(metrics_of(r).get(k))
                                               for k, lab in METRICS.items()}
                for tag, r in (("A", ra), ("B", rb))}
        t2.plotly_chart(metrics_bar(bars, tuple(METRICS.values())), width="stretch",
                        key="runs-bars")
sidebar()
