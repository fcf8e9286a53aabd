"""Host side of the container layer: image, hardening, the channel (protocol core, typed
events, blocking driver).

Names shared by everything that creates or cleans up sandbox containers.
"""

LABEL_MANAGED = "io.corral.managed"  # "1" on every container Corral creates
LABEL_INSTANCE = "io.corral.instance"  # id of the daemon (or test run) that owns it
LABEL_SESSION = "io.corral.session"  # session id once a session holds the container
LABEL_ROLE = "io.corral.role"  # "pool", "probe", "doctor", "test"

IMAGE_REPO = "corral-sandbox"  # image tags: corral-sandbox:<content hash> and :latest
CONTAINER_PREFIX = "corral-"  # container names start with this
