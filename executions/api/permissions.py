"""Who may change an object that the API already lets them see."""

from django.utils.translation import gettext_lazy as _
from rest_framework.permissions import SAFE_METHODS, BasePermission


class OwnerMayChange(BasePermission):
    """Whoever may see an object may read it (staff see all); only its owner or a
    superuser may change or delete it."""

    message = _(
        "Only this workflow's owner (or a superuser) may change or delete it; staff may "
        "read and run it. To change it, create a workflow of your own with its definition."
    )

    def has_object_permission(self, request, view, obj) -> bool:
        if request.method in SAFE_METHODS:
            return True
        return obj.owner_id == request.user.pk or request.user.is_superuser
