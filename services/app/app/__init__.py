"""FastAPI service whose background work runs on Inngest."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("app")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0"
