"""Every check made before anything changes: of the files (validate), of what a branch may use (boundaries, read
from the protected branch) and of what only the server can answer (server_checks)."""
