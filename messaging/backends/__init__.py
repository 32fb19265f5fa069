"""Delivery backends: one function per medium that hands a rendered message
to the outside world and returns the provider's message id.

A backend raises TransientDeliveryError when trying again later may work
(server down, 4xx) and PermanentDeliveryError when it will not (5xx,
address refused).
"""


class DeliveryError(Exception):
    pass


class TransientDeliveryError(DeliveryError):
    pass


class PermanentDeliveryError(DeliveryError):
    pass
