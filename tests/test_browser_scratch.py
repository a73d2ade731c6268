import datetime
import pytest
from django.utils import timezone
from messaging import services
from messaging.models import Message
from tests.browser import Browser
from tests.factories import UserFactory
from tests.live import Daphne

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_shots(transactional_db, tmp_path):
    alice, bob, carol = (UserFactory(username=n) for n in ("alice", "bob", "x.y+z"))
    dm, _ = services.conversation_open_direct(user=alice, other=bob)
    group = services.conversation_create_group(
        creator=alice, others=[bob, carol], title="Weekend <b>plans</b>"
    )
    n = 0

    def say(who, body, conv):
        nonlocal n
        n += 1
        return services.message_send(
            sender=who, body=body, client_id=f"c{n}", conversation_id=conv.pk
        ).message

    old = [
        say(bob, "Are we still on for Saturday?", dm),
        say(alice, "Yes! 10am at the station", dm),
    ]
    Message.objects.filter(pk__in=[m.pk for m in old]).update(
        created_at=timezone.now() - datetime.timedelta(days=2)
    )
    say(bob, "Morning! Did you see the news?", dm)
    say(bob, "https://example.com/article is wild", dm)
    say(alice, "Haha yes, I read it on the train", dm)
    say(
        alice,
        "A much longer message to see how the bubbles wrap when there is a lot of text in one go, like this one here which keeps going.",
        dm,
    )
    say(bob, "See you later", dm)
    say(carol, "Who brings the snacks?", group)
    server = Daphne(log_path=tmp_path / "d.log").start()
    try:
        for size in [(1280, 800), (375, 740)]:
            phone = size[0] == 375
            for dark in (False, True):
                b = Browser(
                    name="a",
                    base_url=server.http_url,
                    size=size,
                    phone=phone,
                    dark=dark,
                    timezone="Europe/Paris",
                )
                b.log_in("alice", f"/c/{dm.pk}/")
                b.visible('[data-testid="message"]')
                import time

                time.sleep(1)
                tag = f"{size[0]}-{'dark' if dark else 'light'}"
                b.driver.save_screenshot(f"/tmp/shots/conv-{tag}.png")
                if size[0] == 375:
                    b.by_testid("back-button").click()
                    time.sleep(0.5)
                    b.driver.save_screenshot(f"/tmp/shots/inbox-{tag}.png")
                b.open("/accounts/logout/") if False else None
                b.quit()
        b = Browser(name="login", base_url=server.http_url, size=(375, 740), phone=True)
        b.open("/accounts/login/")
        b.driver.save_screenshot("/tmp/shots/login-375.png")
        b.quit()
    finally:
        server.stop()
