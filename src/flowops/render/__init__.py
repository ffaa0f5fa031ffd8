"""What a branch deploys, computed from the config: its exact prefect.yaml (names, pins, pools, the git clone step),
its automations, and its image (a tag hashed from what it is built from, built only when the registry lacks it)."""
