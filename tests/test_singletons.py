"""Objects made once per process: one object for every thread, and a reset that lets go."""

from __future__ import annotations

import threading
import time

from messaging.singletons import per_process, reset_all


class SlowToMake:
    """Something whose making takes a while, so that threads asking at once overlap."""

    made = 0

    def __init__(self) -> None:
        time.sleep(0.05)
        SlowToMake.made += 1
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True


def test_threads_asking_at_once_share_one_object_and_a_reset_stops_it():
    SlowToMake.made = 0
    the_one = per_process(SlowToMake, on_reset=SlowToMake.stop)
    got: list[SlowToMake] = []
    threads = [threading.Thread(target=lambda: got.append(the_one())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert SlowToMake.made == 1
    assert all(thing is got[0] for thing in got)

    reset_all()
    assert got[0].stopped, "a forgotten object's threads and connections are let go"
    assert the_one() is not got[0] and SlowToMake.made == 2
