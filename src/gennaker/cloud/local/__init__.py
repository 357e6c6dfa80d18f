"""The local provider: server groups of real processes on this machine behind a Gennaker-owned
HAProxy, with content-addressed artifacts as images (see ``provider.LocalProvider``)."""
