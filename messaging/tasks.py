"""rq jobs: take ids, call one service."""

from messaging.services.retries import messages_retry


def messaging_retry_task(*, message_ids, token):
    return messages_retry(message_ids=message_ids, token=token)


def messaging_confirmation_task(*, contact_id, message_type_id, key):
    from messaging.services.confirmation import double_opt_in_confirmation_send

    result = double_opt_in_confirmation_send(
        contact_id=contact_id, message_type_id=message_type_id, key=key
    )
    return result.message.status if result else None
