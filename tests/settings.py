"""Settings for the test suite: the project's own, with a throwaway secret key."""

import os

os.environ.setdefault("SECRET_KEY", "test-suite-only-secret-key")

from project.settings import *  # noqa: F403

# Test users need no slow password hashing.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Tests start maintenance themselves where they are about it.
EXECUTIONS_MAINTENANCE = False
# ... and prune where they are about it.
EXECUTIONS_RETENTION_INTERVAL = 0

# Throttle counts live in this process, so each test can start from none
# (clearing a Redis cache would flush the database the other tests share).
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
