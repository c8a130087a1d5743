"""How the world reaches the workflows: the ``nudge`` CLI and the HTTP gateway."""
