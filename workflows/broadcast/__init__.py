"""Broadcasts (群发): the ``Broadcast`` workflow and its deterministic parts.

Reading order: ``workflow`` (the story: passes, the window, the updates and the query), then
``window`` (the adaptive window and ``--rate``), ``tally`` (the counts and the UI's words),
``carry`` (what continue-as-new hands on), ``ids`` (a scheduled run's broadcast id) and
``policies`` (timeouts, retries and the history bound).
"""

from workflows.broadcast.workflow import Broadcast

__all__ = ["Broadcast"]
