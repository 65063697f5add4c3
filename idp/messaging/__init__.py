"""Messages to citizens outside the browser: e-mail (``mail``), SMS (``sms``),
and the demo's outbox (``outbox``) that stands in for both on localhost.

Keys reach them through the ``mailer`` and ``sms`` ports; each backend raises
:class:`DeliveryFailed` when the message could not be handed over, so a key
can tell the citizen instead of waiting for a code that never comes.
"""
from __future__ import annotations


from adapters.port_errors import DeliveryFailed  # noqa: F401 (raised by the backends, caught by keys)
