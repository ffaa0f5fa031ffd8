"""What a project declares: deployments/flowops.yaml and the prefect.yaml files it names, read and typed (no
server, no git), with the problems any later step reports about them."""
