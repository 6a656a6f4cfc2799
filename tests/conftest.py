"""The project's own tests use its pytest plugin (lab.pytest_plugin): test labs carry the
run's prefix (t<4 hex>-) and the suite removes only those."""

pytest_plugins = ["lab.pytest_plugin"]
