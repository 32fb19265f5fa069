"""`make run` picks a Redis: the configured one when it answers, else an embedded one."""

import redis
from django.conf import settings

from journeys.management.commands.waymark_run import (
    choose_redis,
    embedded_redis_stop,
    redacted,
    redis_answers,
)
from tests.conftest import free_port


def test_configured_redis_is_used_when_it_answers(tmp_path):
    # make test points REDIS_URL at a running Redis
    choice = choose_redis(settings.REDIS_URL, data_dir=tmp_path)

    assert choice.url == settings.REDIS_URL
    assert choice.server is None
    assert "REDIS_URL" in choice.description
    assert not (tmp_path / "redis.db").exists()


def test_embedded_redis_starts_when_nothing_answers(tmp_path):
    # Given a URL where no Redis listens
    unreachable = f"redis://127.0.0.1:{free_port()}/0"
    assert not redis_answers(unreachable)

    # When Waymark chooses a Redis
    choice = choose_redis(unreachable, data_dir=tmp_path)
    try:
        # Then an embedded server answers at the URL it hands to the processes
        assert choice.server is not None
        assert choice.url.startswith("unix://") and choice.url.endswith("?db=0")
        assert "embedded" in choice.description
        client = redis.Redis.from_url(choice.url)
        assert client.ping()
        client.set("waymark:probe", "1")
        client.close()
    finally:
        embedded_redis_stop(choice.server)

    # and once stopped it is gone, its data saved where asked
    assert not redis_answers(choice.url)
    assert (tmp_path / "redis.db").exists()


def test_printed_redis_urls_hide_the_password():
    assert redacted("redis://:s3cret@redis.internal:6379/0") == "redis://:***@redis.internal:6379/0"
    assert redacted("smtp://mailer:s3cret@relay:587") == "smtp://mailer:***@relay:587"
    assert redacted("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
