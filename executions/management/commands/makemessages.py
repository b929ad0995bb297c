"""Django's ``makemessages``, set up for this project's catalogs (``locale/``).

They hold the dashboard's texts and the API's messages: the tests, the
benchmark, the clients, the scripts and the docs are left out. Each entry
names the files it comes from without line numbers, so that moving code does
not rewrite the catalogs, and messages no longer in the code are dropped.
Run it for each domain::

    python manage.py makemessages -l zh_Hans              # Python and templates
    python manage.py makemessages -l zh_Hans -d djangojs  # the dashboard's modules
"""

from django.core.management.commands import makemessages

IGNORED = ["tests", "bench", "clients", "scripts", "docs", "staticfiles"]


class Command(makemessages.Command):
    def handle(self, *args, **options):
        options["ignore_patterns"] = [*options["ignore_patterns"], *IGNORED]
        options["add_location"] = options["add_location"] or "file"
        options["no_obsolete"] = True
        return super().handle(*args, **options)
