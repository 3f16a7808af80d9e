"""``python -m tierspayant.demo.totp SECRET``: the current TOTP code of a demo account,
never a stale one: with less than ``MIN_LEFT_SECONDS`` left in the current 30-second
step, it waits for the next step first; it prints the code and how long it stays valid.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import pyotp

from tierspayant.security.mfa import TOTP_DIGITS, TOTP_PERIOD_SECONDS

MIN_LEFT_SECONDS = 10


def fresh_code(
    secret: str,
    *,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[str, int]:
    """The code and the whole seconds it stays valid (at least ``MIN_LEFT_SECONDS``)."""
    left = TOTP_PERIOD_SECONDS - clock() % TOTP_PERIOD_SECONDS
    if left < MIN_LEFT_SECONDS:
        sleep(left + 0.05)
    now = clock()
    code = pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_PERIOD_SECONDS).at(now)
    return code, int(TOTP_PERIOD_SECONDS - now % TOTP_PERIOD_SECONDS)


def command(secret: str) -> str:
    """The shell command that prints a fresh code for ``secret`` (this interpreter)."""
    return f"{sys.executable} -m tierspayant.demo.totp {secret}"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage : python -m tierspayant.demo.totp SECRET", file=sys.stderr)
        return 2
    try:
        code, left = fresh_code(argv[0].replace(" ", ""))
    except ValueError:  # binascii.Error, a ValueError: not base32
        print("secret TOTP invalide (base32 attendu)", file=sys.stderr)
        return 2
    print(f"{code}  (valable encore {left} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
