"""The writer side of the latency benchmark: another process records plate reads.

    python bench/_latency_writer.py DATABASE_URL SAMPLES INTERVAL_S OUT_FILE

Each sample goes through SessionService.record_plate_read (the path a real camera takes:
one transaction with its audit row) and OUT_FILE gets "<session id> <time.time() after commit>".
Older sessions are marked done between samples so the board holds a realistic number of
vehicles rather than growing without bound.
"""

import random
import sys
import time

MAX_ON_BOARD = 10


def main(url: str, samples: int, interval: float, out_path: str) -> None:
    from clarity_tui.config import load_settings
    from clarity_tui.services.actor import Actor
    from clarity_tui.services.bootstrap import open_database
    from clarity_tui.seeding.demo import random_plate
    from clarity_tui.services.sessions import SessionService
    from db.models import SessionStatus
    from hardware.plate_reader import PlateEvent

    db = open_database(load_settings(database_url=url, terminal_id="bench-camera"))
    service = SessionService(db)
    actor = Actor.system("bench-camera")
    rng = random.Random(42)
    # Half the arrivals are the site's own vehicles (member badges need the customer and
    # membership reads), half are unknown plates. No plate twice: a repeat read of a car
    # already waiting is not a new session.
    from sqlmodel import select

    from db.models import Vehicle

    with db.read() as s:
        known = list(s.exec(select(Vehicle.plate).where(Vehicle.customer_id.is_not(None)).limit(500)))  # type: ignore[union-attr]
    rng.shuffle(known)
    lanes = ["Pre-Gate", "Lane 1", "Lane 2", "Lane 3"]
    written: list[int] = []
    with open(out_path, "w", buffering=1) as out:
        for i in range(samples):
            # Jitter, so samples do not phase-lock with the board's polling.
            time.sleep(interval * (0.5 + rng.random()) / 2)
            if len(written) >= MAX_ON_BOARD:
                service.set_status(written[-MAX_ON_BOARD], SessionStatus.DONE, actor)
            time.sleep(interval * (0.5 + rng.random()) / 2)
            plate = known.pop() if known and i % 2 == 0 else random_plate(rng)
            event = PlateEvent(plate=plate, lane=lanes[i % len(lanes)], region="US-TX", confidence=0.97)
            session_id = service.record_plate_read(event, actor)
            committed = time.time()
            written.append(session_id)
            out.write(f"{session_id} {committed:.6f}\n")
    db.dispose()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4])
