"""The types the client's signatures use."""

import uuid
from typing import Any

#: A JSON object as the server sends it: an event, an execution, a workflow, a page.
JSONObject = dict[str, Any]
#: An execution's or a workflow's id, as a string or a UUID.
Id = str | uuid.UUID
