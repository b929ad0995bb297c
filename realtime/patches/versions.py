"""The check each patch makes of the libraries it was written for."""

from importlib import metadata

from django.core.exceptions import ImproperlyConfigured

# What each patch declares: the distributions it reaches into, and the versions
# of each it was written and checked against.
Supported = dict[str, tuple[str, ...]]


def installed_version(distribution: str) -> str | None:
    """The installed version of ``distribution``, or None when it is not installed."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def require(patch: str, supported: Supported) -> None:
    """Raise ``ImproperlyConfigured`` unless each library of ``supported`` is
    installed at one of the versions ``patch`` (a module's name) was written for."""
    for distribution, versions in supported.items():
        found = installed_version(distribution)
        if found in versions:
            continue
        problem = f"{patch} was written for {distribution} {' or '.join(versions)}, but "
        fix = f"Install {distribution}=={versions[-1]} (requirements.txt)"
        if found is None:
            raise ImproperlyConfigured(f"{problem}{distribution} is not installed. {fix}.")
        raise ImproperlyConfigured(
            f"{problem}{distribution} {found} is installed. {fix}, or check {patch} "
            f"against {found} as docs/patches.md says and add it to its SUPPORTED."
        )
