"""The compliance services the send gate and the admin API share, each on the store:

- ``registry``: templates and signatures, their review state, and the cache the gate reads;
- ``consent``: marketing consent, granted and withdrawn, with its evidence;
- ``pauses``: paused templates, journeys, signatures and routes (``nudge pause``, the breaker);
- ``complaints``: the complaint-rate breaker that pauses what draws opt-outs;
- ``alerts``: the ops webhook the breakers and route pauses notify.

The pure rules they apply (quiet hours, caps, wording, keywords) are in the kernel (``nudge/``).
"""
