"""The writer side of the latency benchmark: another process records plate reads.

    python bench/_latency_writer.py DATABASE_URL prefill COUNT
    python bench/_latency_writer.py DATABASE_URL SAMPLES INTERVAL_S OUT_FILE ON_BOARD

`prefill` puts COUNT waiting vehicles on the board before the app starts (not timed).

Each sample goes through SessionService.record_plate_read (the path a real camera takes:
one transaction with its audit row) and OUT_FILE gets "<session id> <time.time() after commit>".
Before each arrival the oldest vehicle is marked done once ON_BOARD are waiting, so every
sample lands on a board holding ON_BOARD vehicles (the issue's condition: 30).
"""

import random
import sys
import time

LANES = ["Pre-Gate", "Lane 1", "Lane 2", "Lane 3"]


def _open(url: str):
    from clarity_tui.config import load_settings
    from clarity_tui.services.actor import Actor
    from clarity_tui.services.bootstrap import open_database
    from clarity_tui.services.sessions import SessionService

    db = open_database(load_settings(database_url=url, terminal_id="bench-camera"))
    return db, SessionService(db), Actor.system("bench-camera")


def _known_plates(db, rng: random.Random) -> list[str]:
    # Half the arrivals are the site's own vehicles (member badges need the customer and
    # membership reads), half are unknown plates. No plate twice: a repeat read of a car
    # already waiting is not a new session.
    from sqlmodel import select

    from db.models import Vehicle

    with db.read() as s:
        known = list(s.exec(select(Vehicle.plate).where(Vehicle.customer_id.is_not(None)).limit(500)))  # type: ignore[union-attr]
    rng.shuffle(known)
    return known


def _arrive(service, actor, rng: random.Random, known: list[str], i: int) -> int:
    from clarity_tui.seeding.demo import random_plate
    from hardware.plate_reader import PlateEvent

    plate = known.pop() if known and i % 2 == 0 else random_plate(rng)
    event = PlateEvent(plate=plate, lane=LANES[i % len(LANES)], region="US-TX", confidence=0.97)
    return service.record_plate_read(event, actor)


def prefill(url: str, count: int) -> None:
    db, service, actor = _open(url)
    rng = random.Random(7)
    known = _known_plates(db, rng)
    for i in range(count):
        _arrive(service, actor, rng, known, i)
    db.dispose()


def main(url: str, samples: int, interval: float, out_path: str, on_board: int) -> None:
    from db.models import SessionStatus

    db, service, actor = _open(url)
    rng = random.Random(42)
    # The vehicles already waiting (the prefill), oldest first: they leave first.
    board = [b for lane in service.board() for b in lane.bubbles]
    waiting = sorted(b.session_id for b in board)
    on_board_plates = {b.plate for b in board}
    known = [p for p in _known_plates(db, rng) if p not in on_board_plates]
    with open(out_path, "w", buffering=1) as out:
        for i in range(samples):
            # Jitter, so samples do not phase-lock with the board's polling.
            time.sleep(interval * (0.5 + rng.random()) / 2)
            while len(waiting) >= on_board:
                service.set_status(waiting.pop(0), SessionStatus.DONE, actor)
            time.sleep(interval * (0.5 + rng.random()) / 2)
            session_id = _arrive(service, actor, rng, known, i)
            committed = time.time()
            if session_id in waiting:
                continue  # a random plate that was already waiting: a move, not an arrival
            waiting.append(session_id)
            out.write(f"{session_id} {committed:.6f}\n")
    db.dispose()


if __name__ == "__main__":
    if sys.argv[2] == "prefill":
        prefill(sys.argv[1], int(sys.argv[3]))
    else:
        main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], int(sys.argv[5]))
