"""rq jobs: take ids, call one service."""

from messaging.services.retries import messages_retry


def messaging_retry_task(*, message_ids, token):
    return messages_retry(message_ids=message_ids, token=token)
