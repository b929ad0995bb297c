"""django-eventstream set up as its documentation recommends, for ``bench.peer``.

Events persisted by its ``DjangoModelStorage`` in SQLite (the file named by
``PEER_DATABASE``), one channel per execution at ``/events/<channel>/``,
resumed with ``Last-Event-ID``, served by daphne as a Django ASGI application.
``/publish`` starts the load's publisher thread in this process.
"""
