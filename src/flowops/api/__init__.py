"""The Prefect server as flowops sees it: the data and the protocol (server), the one client that talks to the API
(client), the job templates of pool types (pool_types)."""
