"""The executions app's settings, each declared once (``executions.env``).

``project.settings`` reads them from the environment; the app reads them
from ``django.conf.settings`` at call time, so ``override_settings`` works.
"""

from executions.conf import api, limits, runs

SETTINGS = [*runs.SETTINGS, *limits.SETTINGS, *api.SETTINGS]
