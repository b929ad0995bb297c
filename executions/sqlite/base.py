"""SQLite, with this process's write transactions taking turns on a lock.

SQLite has one writer at a time. A transaction that finds the database
locked polls for it, sleeping up to 100 ms between tries, so under many
concurrent writers (executions, sockets, REST) some wait far longer than
the writes ahead of them take. Here writers of one process queue on a lock
instead and start as soon as the previous one commits; the busy timeout
still covers writers in other processes.
"""

import threading

from django.db.backends.sqlite3 import base

_writer = threading.Lock()


class DatabaseWrapper(base.DatabaseWrapper):
    _holds_writer = False

    def _start_transaction_under_autocommit(self):
        _writer.acquire()
        self._holds_writer = True
        try:
            super()._start_transaction_under_autocommit()
        except BaseException:
            self._release_writer()
            raise

    def _commit(self):
        try:
            super()._commit()
        finally:
            self._release_writer()

    def _rollback(self):
        try:
            super()._rollback()
        finally:
            self._release_writer()

    def _close(self):
        try:
            super()._close()
        finally:
            self._release_writer()

    def _release_writer(self):
        if self._holds_writer:
            self._holds_writer = False
            _writer.release()
