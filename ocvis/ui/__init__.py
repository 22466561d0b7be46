"""The only package that imports Streamlit: shared widgets, caches and figure builders."""
# pandas is imported here, in the first script run and before any job thread exists:
# plotly checks ``sys.modules["pandas"]`` without importing it, and when a job thread
# (a UMAP projection imports pandas through its dependencies) is half-way through that
# import, a page building a figure got the partially initialised module
# ("partially initialized module 'pandas' has no attribute 'Series'"; seen by
# bench/bench_latent_open.py on a fresh server).
import pandas  # noqa: F401


# Safe settings that hold however the server was started (from another folder, by another
# launcher): a setting still at Streamlit's own default is set to ocvis's; one the user set
# on purpose (flag, environment, config file) is left alone. The server's address cannot
# change once it listens: the script-level .streamlit/config.toml (read by Streamlit >= 1.46
# wherever it starts) keeps it on localhost.
SAFE_CLIENT_SETTINGS = {"client.showErrorDetails": "none", "browser.gatherUsageStats": False,
                        "client.showSidebarNavigation": False,
                        # a full gc.collect(2) after every fragment rerun was most of the
                        # server's CPU while a job panel refreshed (bench_live_page.py)
                        "runner.postScriptGC": False}


def apply_safe_settings() -> list[str]:
    """Set each of :data:`SAFE_CLIENT_SETTINGS` still at its default; returns those set."""
    from streamlit import config

    changed = []
    for key, value in SAFE_CLIENT_SETTINGS.items():
        opt = config.get_config_options().get(key)
        if opt is not None and opt.where_defined == config.ConfigOption.DEFAULT_DEFINITION \
                and opt.value != value:
            config.set_option(key, value, "ocvis safe default")
            changed.append(key)
    return changed


apply_safe_settings()
