"""System checks of the realtime app's settings: declared bounds, and daphne's own limit."""

from django.core import checks

from realtime.checks import DAPHNE_MAX_FRAME_BYTES, check_declared_bounds, check_message_limit


def test_the_default_settings_pass():
    assert check_declared_bounds() == []
    assert check_message_limit() == []
    assert not [e for e in checks.run_checks() if e.id in {"realtime.E100", "realtime.W141"}]


def test_a_value_outside_its_declared_bounds_is_an_error(settings):
    settings.REALTIME_IDLE_TIMEOUT = 0
    settings.REALTIME_MAX_SUBSCRIPTIONS = -1

    errors = check_declared_bounds()

    assert [(e.id, e.msg) for e in errors] == [
        (
            "realtime.E100",
            "REALTIME_MAX_SUBSCRIPTIONS is -1; it must be a whole number, 1 or more.",
        ),
        ("realtime.E100", "REALTIME_IDLE_TIMEOUT is 0; it must be a number of seconds above 0."),
    ]


def test_a_frame_limit_above_daphnes_is_a_warning(settings):
    settings.REALTIME_MAX_MESSAGE_BYTES = DAPHNE_MAX_FRAME_BYTES + 1

    [warning] = check_message_limit()

    assert (warning.id, warning.level) == ("realtime.W141", checks.WARNING)
    assert "--websocket-max-frame-size" in warning.msg

    settings.REALTIME_MAX_MESSAGE_BYTES = DAPHNE_MAX_FRAME_BYTES
    assert check_message_limit() == []
