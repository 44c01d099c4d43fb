"""Where student code runs: the isolation of the worker process (bubblewrap, the unprivileged `user`
fallback, cgroups), the wire between judge and worker, the worker itself and its guard."""
