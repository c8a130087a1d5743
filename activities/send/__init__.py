"""The send gate, one step per module, in reading order:

- ``activity``: ``send_message``, the steps in order;
- ``compose``: the template variant, tracked links, signature, price and the provider's request;
- ``ledger``: every read and write of a message row;
- ``reconcile``: ask the route an earlier attempt called before sending again;
- ``gate``: the ordered checks, each a reason to block or defer;
- ``dispatch``: the best usable route, failover, and the provider's answer;
- ``walk``: which candidate routes may carry a message now (a broadcast's batches walk them too);
- ``refusal``: a provider's permanent refusal: failed, suppression, the complaint breaker;
- ``outcome``: the reasons, and the row as the journey's ``SendResult``.
"""

from .activity import SendActivities
from .dispatch import never_reached

__all__ = ["SendActivities", "never_reached"]
