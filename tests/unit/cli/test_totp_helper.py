"""The demo's TOTP helper (``python -m tierspayant.demo.totp``): never a code about to
expire — with less than ten seconds left in the step it waits for the next one."""

from __future__ import annotations

import re

import pyotp
import pytest

from tierspayant.demo import totp

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


class Clock:
    def __init__(self, at: float) -> None:
        self.at = at
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.at

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.at += seconds


@pytest.mark.parametrize(
    ("second", "waits"), [(0.0, False), (19.9, False), (20.5, True), (29.9, True)]
)
def test_the_code_is_valid_at_least_ten_seconds(second: float, waits: bool) -> None:
    clock = Clock(1_800_000_000 - 1_800_000_000 % 30 + second)
    code, left = totp.fresh_code(SECRET, clock=clock, sleep=clock.sleep)
    assert bool(clock.slept) is waits
    assert left >= totp.MIN_LEFT_SECONDS
    assert code == pyotp.TOTP(SECRET).at(clock.at)
    if waits:  # the code is of the next step, not the one about to end
        assert code == pyotp.TOTP(SECRET).at(clock.at - second + 30)


def test_the_command_prints_the_code_and_its_validity(capsys: pytest.CaptureFixture[str]) -> None:
    assert totp.main([SECRET]) == 0
    printed = capsys.readouterr().out
    code, rest = printed.split("  ", 1)
    assert re.fullmatch(r"\d{6}", code)
    assert rest.startswith("(valable encore ")


def test_a_bad_secret_is_refused_in_french(capsys: pytest.CaptureFixture[str]) -> None:
    assert totp.main(["pas-du-base32!"]) == 2
    assert "secret TOTP invalide" in capsys.readouterr().err
    assert totp.main([]) == 2
