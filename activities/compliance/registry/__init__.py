"""The template and signature registry: what may be sent, in which language, under which signature.

Templates (``sms_template``, one row per code and language) and signatures or senders
(``sms_signature``) each carry a review state. Only approved templates and signatures are sent:
the send gate asks ``Registry.get`` and ``Registry.signature_approved``. ``Registry`` composes
one part per concern:

- ``cache``: the send path's snapshot of both tables, reloaded at most every ``CACHE_TTL``, and
  the choice of a language variant;
- ``seed``: the built-in templates and the routes' signatures, inserted as approved when missing;
- ``entries``: listing, reading, creating and editing entries (always the database);
- ``review``: the state machine draft -> pending -> approved / rejected;
- ``names``: template codes, language tags, signature names.
"""

from activities.compliance.registry.cache import CACHE_TTL
from activities.compliance.registry.entries import TemplateChange
from activities.compliance.registry.seed import route_signatures
from activities.compliance.registry.service import Registry
from nudge.wording import opt_out_wording_problem

__all__ = [
    "CACHE_TTL",
    "Registry",
    "TemplateChange",
    "opt_out_wording_problem",
    "route_signatures",
]
